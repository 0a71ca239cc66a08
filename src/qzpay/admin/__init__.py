"""The admin console: server-rendered pages to see and fix billing state.

``create_admin_router(billing, auth=APIKeyAuth(...))`` is a FastAPI router to mount at
``/admin``; ``qzpay serve`` mounts it there. Needs the ``api`` (or ``admin``) extra, which
brings Jinja2: ``pip install "qzpay[api]"``.
"""

from qzpay.admin.router import create_admin_router
from qzpay.admin.session import COOKIE_NAME

__all__ = ["COOKIE_NAME", "create_admin_router"]
