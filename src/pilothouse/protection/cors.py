"""CORS (`[protection.cors]`, opt-in): Starlette's `CORSMiddleware` (pure ASGI, maintained;
the `cors` extra) built from the config. Preflights are answered by it without reaching the app
(or the authentication inside it: a preflight carries no credentials); simple responses get the
`Access-Control-*` headers for allowed origins. `*` together with credentials is refused when
the config is loaded (Starlette would echo any origin back)."""

from __future__ import annotations

from pilothouse.asgi import ASGIApp
from pilothouse.config.protection import CorsConfig
from pilothouse.errors import ConfigError


def cors_middleware(app: ASGIApp, config: CorsConfig) -> ASGIApp:
    try:
        from starlette.middleware.cors import CORSMiddleware
    except ImportError:
        raise ConfigError("protection.cors needs the 'cors' extra: pip install 'pilothouse[cors]'") from None
    wrapped: ASGIApp = CORSMiddleware(
        app,
        allow_origins=config.allow_origins,
        allow_methods=config.allow_methods,
        allow_headers=config.allow_headers,
        expose_headers=config.expose_headers,
        allow_credentials=config.allow_credentials,
        max_age=round(config.max_age),
    )
    return wrapped
