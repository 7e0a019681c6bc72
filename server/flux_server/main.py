"""Process entry point (`python -m flux_server`): logging, settings, uvicorn on FLUX_HOST:PORT.

Named main, not serve: this is the plain uvicorn process; Ray Serve lives in flux_server.cluster."""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Callable
from types import FrameType

import uvicorn

from flux_server.auth import ApiKeys
from flux_server.config import (
    Settings,
    SettingsError,
    api_keys_file_from,
    hf_token_from,
    settings_from_env,
)
from flux_server.logs import setup_logging
from flux_server.scale_config import ScaleSettings, scale_from_env
from flux_server.tls import TlsSettingsError, uvicorn_options


class GracefulServer(uvicorn.Server):
    """uvicorn's server, which tells the app the moment a SIGINT/SIGTERM arrives: its
    running generation then stops at the next denoising step instead of being waited
    out until uvicorn's graceful-shutdown timeout."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def grace_period(settings: Settings) -> int:
    """uvicorn's graceful-shutdown limit: FLUX_SHUTDOWN_GRACE_S for the running generation,
    plus a little for its answer to be sent."""
    return math.ceil(settings.shutdown_grace_s) + 2


def _settings() -> tuple[Settings, SettingsError | None]:
    try:
        return settings_from_env(), None
    except SettingsError as exc:
        port = os.environ.get("PORT", "8000")
        fallback = Settings(port=int(port) if port.isdigit() else 8000,
                            host=os.environ.get("FLUX_HOST") or "0.0.0.0",
                            model=os.environ.get("FLUX_MODEL") or Settings.model,
                            hf_token=hf_token_from(os.environ),
                            # a bad setting elsewhere must not switch the API keys off
                            api_keys_file=api_keys_file_from(os.environ))
        return fallback, exc


def _scale(settings: Settings) -> tuple[ScaleSettings | None, SettingsError | None]:
    try:
        return scale_from_env(os.environ, settings.queue_size), None
    except SettingsError as exc:
        return None, exc


def _watch_sighup(keys: ApiKeys) -> None:
    """SIGHUP re-reads the API keys (`fluxdeploy key rotate` revokes a key this way) without
    touching the model. Installed here, on the main thread before uvicorn starts: uvicorn
    handles only SIGINT/SIGTERM, and the handler is one assignment (the re-read happens on
    the event loop, before the next request is checked)."""
    signal.signal(signal.SIGHUP, lambda _sig, _frame: keys.request_reload())


def main() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    settings, error = _settings()
    keys = ApiKeys(settings.api_keys_file) if settings.api_keys_file else None
    setup_logging(settings.hf_token, [keys.secrets] if keys else [])
    if keys is not None:
        keys.reload()
        _watch_sighup(keys)
    # After the logging set-up and HF_HUB_DISABLE_PROGRESS_BARS (huggingface_hub reads it once).
    from flux_server.app import create_app  # lazy: imported after the set-up above

    scale, scale_error = _scale(settings)
    service = None
    if scale is not None and scale.enabled:
        from flux_server.cluster import ClusterService  # lazy: Ray only for FLUX_REPLICAS > 1

        service = ClusterService(settings, scale, config_error=error)
    app = create_app(settings, config_error=error or scale_error, service=service,
                     api_keys=keys)
    try:
        tls = uvicorn_options(os.environ)
    except TlsSettingsError as exc:
        logging.getLogger("flux_server").error("cannot serve HTTPS: %s", exc)
        raise SystemExit(2) from None
    logging.getLogger("flux_server").info(
        "serving on %s:%s model=%s%s%s%s", settings.host, settings.port, settings.model,
        " (tiny random-weight test pipeline)" if settings.tiny else "",
        f"; API keys: {keys.count} (FLUX_API_KEYS_FILE)" if keys else "; API keys: off",
        "; HTTPS (FLUX_TLS_CERT_FILE)" if tls else "")
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                            access_log=False, timeout_graceful_shutdown=grace_period(settings), **tls)
    GracefulServer(config, app.state.service.begin_shutdown).run()
