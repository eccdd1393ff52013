"""From a parsed location to a ready backend: the one place that picks the implementation.

Remote backends are imported only when used (botocore alone takes ~0.3 s to import), and they are
wrapped in ``RetryBackend``, so every transient network failure is retried with capped exponential
backoff and reported. With ``limit_upload`` / ``limit_download`` set, the outermost wrapper is a
``RateLimitBackend`` (outside the retries: a retried save is paid for once).
Options that are not part of the location come from ``BackendOptions``,
read from the environment by ``BackendOptions.from_env`` (never from argv, so secrets stay out
of ``ps``).
"""

from __future__ import annotations

from shadowvault.repo.backends.base import Backend
from shadowvault.repo.backends.local import LocalBackend
from shadowvault.repo.backends.options import BackendOptions
from shadowvault.repo.backends.ratelimit import RateLimitBackend, bucket_for
from shadowvault.repo.backends.retry import RetryBackend
from shadowvault.repo.location import (
    LocalLocation,
    Location,
    RestLocation,
    S3Location,
    SftpLocation,
)


def open_backend(loc: Location, opts: BackendOptions | None = None) -> Backend:
    """The backend for ``loc`` (remote ones wrapped in ``RetryBackend``, any in ``RateLimitBackend``
    when a limit is set); nothing is contacted yet for local and REST locations, SFTP starts its
    first ``ssh`` (before importing paramiko, so the login overlaps the import), S3 builds its
    client."""
    opts = opts or BackendOptions()
    backend = _plain(loc, opts)
    upload, download = bucket_for(opts.limit_upload), bucket_for(opts.limit_download)
    if upload is None and download is None:
        return backend
    return RateLimitBackend(backend, upload=upload, download=download)


def _plain(loc: Location, opts: BackendOptions) -> Backend:
    if isinstance(loc, LocalLocation):
        return LocalBackend(loc.path)
    inner: Backend
    if isinstance(loc, RestLocation):
        from shadowvault.repo.backends.rest import RestBackend

        inner = RestBackend(loc, opts)
    elif isinstance(loc, S3Location):
        from shadowvault.repo.backends.s3 import S3Backend

        inner = S3Backend(loc, opts)
    elif isinstance(loc, SftpLocation):
        from shadowvault.repo.backends.sshproc import SshProcess, sftp_argv

        # ssh logs in while paramiko is imported; a missing ssh is reported by the first use.
        try:
            started: SshProcess | None = SshProcess(sftp_argv(loc, opts))
        except FileNotFoundError:
            started = None
        from shadowvault.repo.backends.sftp import SftpBackend

        inner = SftpBackend(loc, opts, started)
    else:  # pragma: no cover - the Location union is exhausted above
        raise AssertionError(loc)
    return RetryBackend(inner, attempts=opts.retry_attempts, report=opts.retry_report)
