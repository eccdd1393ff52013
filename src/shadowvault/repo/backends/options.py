"""Settings of the remote backends that are not part of the location, and where they come from.

They are read from the environment (``SHADOWVAULT_*``, restic's ``RESTIC_REST_*``, ``AWS_*``), never
from argv, so a password or key never shows in ``ps``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from shadowvault.errors import UsageError
from shadowvault.repo.backends.retry import ReportFn

DEFAULT_CONNECTIONS = 4
MAX_CONNECTIONS = 64

ENV_CONNECTIONS = "SHADOWVAULT_CONNECTIONS"
ENV_CACERT = "SHADOWVAULT_CACERT"
ENV_REST_USERNAME = "SHADOWVAULT_REST_USERNAME"
ENV_REST_PASSWORD = "SHADOWVAULT_REST_PASSWORD"
ENV_S3_PATH_STYLE = "SHADOWVAULT_S3_PATH_STYLE"
ENV_S3_STORAGE_CLASS = "SHADOWVAULT_S3_STORAGE_CLASS"
ENV_SSH_CONFIG = "SHADOWVAULT_SSH_CONFIG"
ENV_SFTP_COMMAND = "SHADOWVAULT_SFTP_COMMAND"

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    (ENV_CONNECTIONS, f"parallel uploads, 1-{MAX_CONNECTIONS} (default {DEFAULT_CONNECTIONS})"),
    (ENV_CACERT, "PEM file of the CA that signed the REST or S3 server's certificate"),
    (ENV_REST_USERNAME, "rest: user name (or RESTIC_REST_USERNAME)"),
    (ENV_REST_PASSWORD, "rest: password (or RESTIC_REST_PASSWORD)"),
    (ENV_S3_PATH_STYLE, "s3: path-style addressing, true or false (default: on for any endpoint but AWS's)"),
    (ENV_S3_STORAGE_CLASS, "s3: storage class of data packs"),
    ("AWS_ACCESS_KEY_ID", "s3: access key (with AWS_SECRET_ACCESS_KEY; AWS_DEFAULT_REGION or AWS_REGION)"),
    (ENV_SSH_CONFIG, "sftp: ssh configuration file (ssh -F)"),
    (ENV_SFTP_COMMAND, "sftp: the whole command that starts the SFTP subsystem"),
)
"""Every variable read here, and what it sets (for the manual page)."""


@dataclass(frozen=True)
class BackendOptions:
    """Settings of remote backends that are not part of the location."""

    connections: int = DEFAULT_CONNECTIONS
    """Parallel uploads (and HTTP connections kept alive)."""
    cacert: str | None = None
    """PEM file of the CA that signed the server's certificate (REST and S3 over https)."""
    rest_username: str | None = None
    rest_password: str | None = field(default=None, repr=False)
    s3_path_style: bool | None = None
    """Path-style addressing (host/bucket/key); None: on for any endpoint but AWS's."""
    s3_region: str | None = None
    s3_storage_class: str | None = None
    """Storage class of data packs (metadata files keep the default class)."""
    ssh_config: str | None = None
    """``ssh -F FILE``; default: the user's ~/.ssh/config."""
    sftp_command: str | None = None
    """The whole command that starts the SFTP subsystem (like restic's ``sftp.command``)."""
    retry_attempts: int = 6
    retry_report: ReportFn | None = None
    limit_upload: int = 0
    """KiB/s for everything written (``--limit-upload``); 0: no limit."""
    limit_download: int = 0
    """KiB/s for everything read (``--limit-download``); 0: no limit."""

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] = os.environ,
        retry_report: ReportFn | None = None,
        *,
        limit_upload: int = 0,
        limit_download: int = 0,
    ) -> BackendOptions:
        """Options from ``SHADOWVAULT_*`` (and restic's ``RESTIC_REST_*``, ``AWS_*``) variables."""
        raw = env.get(ENV_CONNECTIONS, "")
        connections = DEFAULT_CONNECTIONS
        if raw:
            if not raw.isdigit() or not 1 <= int(raw) <= MAX_CONNECTIONS:
                raise UsageError(f"{ENV_CONNECTIONS}={raw!r}: give a number from 1 to {MAX_CONNECTIONS}")
            connections = int(raw)
        style = env.get(ENV_S3_PATH_STYLE, "").lower()
        if style not in ("", "1", "0", "true", "false", "yes", "no"):
            raise UsageError(f"{ENV_S3_PATH_STYLE}={style!r}: use true or false")
        return cls(
            connections=connections,
            cacert=env.get(ENV_CACERT) or None,
            rest_username=env.get(ENV_REST_USERNAME) or env.get("RESTIC_REST_USERNAME") or None,
            rest_password=env.get(ENV_REST_PASSWORD) or env.get("RESTIC_REST_PASSWORD") or None,
            s3_path_style=None if not style else style in ("1", "true", "yes"),
            s3_region=env.get("AWS_DEFAULT_REGION") or env.get("AWS_REGION") or None,
            s3_storage_class=env.get(ENV_S3_STORAGE_CLASS) or None,
            ssh_config=env.get(ENV_SSH_CONFIG) or None,
            sftp_command=env.get(ENV_SFTP_COMMAND) or None,
            retry_report=retry_report,
            limit_upload=limit_upload,
            limit_download=limit_download,
        )
