"""The config in force, and its reload when the file changes.

In a cluster the config is a ConfigMap mounted as a file; the kubelet swaps
it in place (a `..data` symlink) some time after the ConfigMap changes. A
background thread polls the identity and content hash of the file and of the
plugin files and folders it names (a ConfigMap of policy files is swapped the
same way); a new config is loaded completely (plugins included) before it
replaces the old one, and an invalid one is refused with a log line while the
old one stays in force.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from policies.config import Config, ConfigError, load_config
from policies.plugins import PluginError, policy_files
from webhook.telemetry import metrics

log = logging.getLogger("podgate.config")


class ConfigHolder:
    """The current Config; requests read `.current` once and use that snapshot."""

    def __init__(
        self,
        path: str | None,
        *,
        loader: Callable[[str | None], Config] = load_config,
        initial: Config | None = None,
    ) -> None:
        self.path = path
        self._loader = loader
        self.current: Config = initial if initial is not None else loader(path)
        self._digest = self._read_digest()
        self._stat: tuple[tuple[str, int, int, int], ...] | None = self._read_stat()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.CONFIG_LAST_RELOAD.set(time.time())

    def _watched(self) -> list[Path]:
        """The config file and the plugin files it names (modules installed as
        packages change with the image, not at run time)."""
        if self.path is None:
            return []
        config = Path(self.path)
        files = [config]
        for source in self.current.raw.plugins:
            path = Path(source) if Path(source).is_absolute() else config.parent / source
            if path.is_dir():
                files += policy_files(path)
            elif path.suffix == ".py" or path.is_file():
                files.append(path)
        return files

    def _read_stat(self) -> tuple[tuple[str, int, int, int], ...] | None:
        if self.path is None:
            return None
        stats = []
        for path in self._watched():
            try:
                st = path.stat()
            except OSError:
                stats.append((str(path), 0, -1, 0))
                continue
            stats.append((str(path), st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(stats)

    def _read_digest(self) -> str | None:
        if self.path is None:
            return None
        digest = hashlib.sha256()
        for number, path in enumerate(self._watched()):
            try:
                data = path.read_bytes()
            except OSError:
                if number == 0:
                    return None  # the config itself is gone for a moment mid-swap
                data = b"<missing>"
            digest.update(f"{path}\0{len(data)}\0".encode())
            digest.update(data)
        return digest.hexdigest()

    def check(self) -> bool:
        """Reload if the file changed; True when a new config is now in force."""
        if self.path is None:
            return False
        stat = self._read_stat()
        if stat == self._stat:
            return False
        self._stat = stat
        digest = self._read_digest()
        if digest is None or digest == self._digest:
            return False  # touched but unchanged, or gone for a moment mid-swap
        self._digest = digest
        try:
            new = self._loader(self.path)
        except (ConfigError, PluginError) as exc:
            metrics.CONFIG_RELOADS.labels("failure").inc()
            log.error(
                "config changed but is invalid; the previous config stays in force",
                extra={"fields": {"config": self.path, "error": str(exc)}},
            )
            return False
        except Exception as exc:  # a plugin may raise anything at import
            metrics.CONFIG_RELOADS.labels("failure").inc()
            log.exception(
                "config reload failed; the previous config stays in force",
                extra={"fields": {"config": self.path, "error": repr(exc)}},
            )
            return False
        self.current = new
        # the new config may name other plugins: watch those from now on
        self._stat, self._digest = self._read_stat(), self._read_digest()
        metrics.CONFIG_RELOADS.labels("success").inc()
        metrics.CONFIG_LAST_RELOAD.set(time.time())
        log.info("config reloaded", extra={"fields": {"config": self.path, "sha256": digest}})
        return True

    def start(self, interval: float) -> None:
        if self.path is None or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(interval):
                self.check()

        self._thread = threading.Thread(target=loop, name="podgate-config", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
