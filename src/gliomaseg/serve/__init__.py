"""``gliomaseg serve``: a web page and a versioned REST API (FastAPI) that segment uploads with
models kept warm in memory. Install with the ``serve`` extra (FastAPI, uvicorn, python-multipart).
"""
