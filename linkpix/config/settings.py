"""The one typed configuration object: every setting, its type, default, help text and rules.

Values come, highest first, from `LINKPIX_<KEY>` environment variables, a `.env` file beside
`config.json`, `config.json` itself, then the defaults below. Every key is declared once here with its
type and help text (docs/configuration.md lists them and a test keeps the two in step); an unknown or mistyped key
stops start-up with a message that names it, instead of surfacing later as a strange failure.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from linkpix.errors import ConfigError
from linkpix.ops.ratelimit import parse_networks, parse_rates
from linkpix.providers.spec import ProviderSpec

ENV_PREFIX = "LINKPIX_"
# Set by the launcher for its children: "key=why,..." for the settings it decided (the dashboard says so).
LAUNCHER_ENV = "LINKPIX_SET_BY_LAUNCHER"


class BackendSpec(BaseModel):
    """One ComfyUI backend of the pool: an entry of `comfyui_urls` (a URL alone means the defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="Base URL of this ComfyUI.")
    name: str = Field("", pattern=r"^[A-Za-z0-9_.:-]{0,64}$",
                      description="How /health, logs and job metadata call it (default: host:port).")
    weight: float = Field(1.0, gt=0, le=1000, description="Share of the work: weight 2 takes twice as much.")
    max_queue: int = Field(0, ge=0, description="Queue length at which it counts as full for /ready (0 = never).")
    tags: list[str] = Field(default_factory=list, description="Free labels, shown in /health.")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} must be an http:// or https:// URL with a host")
        return value.rstrip("/")

    @property
    def label(self) -> str:
        """The name, or host:port[/path] (never the password a URL may carry)."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        return f"{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


class Settings(BaseSettings):
    """Server configuration. Paths are relative to the folder that holds `config.json`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True,
                                      env_file_encoding="utf-8")

    comfyui_url: str = Field("http://127.0.0.1:8188", description="Base URL of the ComfyUI server.")
    comfyui_urls: Annotated[list[BackendSpec], NoDecode] = Field(
        default_factory=list, description="Several ComfyUI backends (replaces comfyui_url): URLs or "
                                          "{url, name, weight, max_queue, tags} objects; comma-separated "
                                          "in LINKPIX_COMFYUI_URLS.")
    providers: list[ProviderSpec] = Field(
        default_factory=list, description="Hosted image APIs beside ComfyUI: {name, kind (openai|bfl), url, "
                                          "api_key_env, models, priority, features, cost_per_image, "
                                          "cost_per_megapixel, timeout, retries} objects; JSON in "
                                          "LINKPIX_PROVIDERS.")
    provider_fallback: str = Field("", max_length=200,
                                   description="Where a request goes when no ComfyUI backend can run it: "
                                               "<provider>:<model>, <provider>, or auto (by priority and "
                                               "features); empty: nowhere.")
    failover_retries: int = Field(1, ge=0, le=10, description="Times a run whose backend dies mid-run is "
                                                              "submitted again on another backend.")
    workflow_path: str = Field("flux_schnell.json",
                               description="Default workflow: a file name inside workflows_dir (or a path "
                                           "to it, like workflows/flux_schnell.json).")
    workflows_dir: str = Field("workflows", description="Folder of API-format workflow files.")
    data_dir: str = Field("data", description="Folder of shared JSON files (styles, placeholders, users).")
    output_dir: str = Field("cache", description="Folder of cached images, one sub-folder per user.")
    timeout: float = Field(300.0, gt=0, description="Seconds a generation may take before it is stopped.")
    image_format: Literal["png", "jpeg", "webp"] = Field("png", description="Default output format.")
    api_port: int = Field(4000, ge=1, le=65535, description="Port of the HTTP API.")
    web_port: int = Field(8501, ge=1, le=65535, description="Port of the Gradio dashboard.")
    network_access: bool = Field(False, description="false: listen on 127.0.0.1 only; true: on all interfaces.")
    max_pixels: int = Field(4_194_304, gt=0, description="Largest width x height a request may ask for.")
    max_prompt_chars: int = Field(4000, gt=0, description="Longest prompt accepted, in characters.")
    edit_workflow: str = Field("flux_kontext_edit.json", description="Default workflow of POST /edit "
                                                                      "(a file in workflows_dir).")
    max_upload_mb: float = Field(64.0, gt=0, description="Largest input image (upload, /edit, base64 in JSON) "
                                                         "in MiB; larger request bodies answer 413 unread.")
    cache_max_mb: float = Field(2048.0, ge=0, description="Cache size limit in MiB (0 = no limit).")
    cache_max_age_days: float = Field(0.0, ge=0, description="Evict cached images older than this (0 = never).")
    error_images: bool = Field(False, description="Always answer errors on image routes with a PNG of the message.")
    live_links: Literal["ask", "images"] = Field("ask", description="ask: live on ?live=1 or an Accept naming "
                                                 "multipart/x-mixed-replace; images: also every <img> (docs/live.md).")
    preview_method: Literal["auto", "latent2rgb", "taesd", "none", "default"] = Field(
        "auto", description="Previews asked of ComfyUI per prompt (extra_data.preview_method, newer ComfyUI); "
                            "default: ComfyUI's own --preview-method.")
    live_fps: float = Field(4.0, gt=0, le=30, description="Most preview frames a second sent to one live viewer.")
    live_max_streams: int = Field(1000, ge=0, description="Live viewers at once in one process (then plain).")
    live_max_per_user: int = Field(200, ge=0, description="Live viewers at once per user (then plain).")
    cors_origins: list[str] = Field(default_factory=list,
                                    description="Origins allowed to call the JSON endpoints from a web page.")
    threads: int = Field(48, ge=1, le=512, description="Worker threads of the WSGI server.")
    cpu_pin: Annotated[int, Field(ge=0, le=4095)] | Literal["auto", "off"] = Field("auto", description=(
        "CPU the API process runs on: auto (one CPU, picked by process id), off (free to move) or a CPU "
        "number. One CPU spares every request its hand-offs between CPUs (docs/operations.md)."))
    max_pending: int = Field(32, ge=1, description="Most generations waiting at once before answering 429.")
    api_keys: dict[str, str] = Field(default_factory=dict,
                                     description="API key -> user name; required for state changes "
                                                 "when network_access is on.")
    admin_keys: list[str] = Field(default_factory=list,
                                  description="Keys of api_keys whose holders see every user's jobs and "
                                              "requests (the others see their own user's only).")
    strip_metadata: bool | None = Field(None, description="Remove the workflow ComfyUI embeds in generated "
                                                          "images; unset: on when network_access is on.")
    signing_keys: list[str] = Field(default_factory=list,
                                    description="HMAC keys for signed URLs (first signs, all verify).")
    require_signature: bool = Field(False, description="Refuse /prompt links that carry no valid signature.")
    job_workers: int = Field(32, ge=1, le=64, description="Async jobs handed to the fair queue at once (POST "
                                                      "/generate); the rest wait in the job store.")
    fair_depth: int = Field(2, ge=1, le=64, description="Runs each ComfyUI backend is given at once (fair queue).")
    fair_half_life: float = Field(3600.0, ge=0, description="Seconds for past GPU-seconds to count half (0: never).")
    fair_weights: dict[str, float] = Field(default_factory=dict, description=(
        "Users' shares of the GPUs in the fair queue (default 1 each; a user of weight 2 gets twice the "
        "GPU-seconds of a user of weight 1 when both wait)."))
    jobs_max_queued: int = Field(100, ge=1, description="Most unfinished async jobs in total before "
                                                        "POST /generate answers 429.")
    jobs_max_queued_per_user: int = Field(10, ge=1, description="Most unfinished async jobs per user before "
                                                                "POST /generate answers 429.")
    max_image_count: int = Field(8, ge=1, le=64, description="Largest image_count one job may ask for.")
    webhook_allow: list[str] = Field(default_factory=list,
                                     description="Hosts (example.com, *.example.com) or networks "
                                                 "(10.0.0.0/8) webhooks may go to; empty: any globally "
                                                 "routable http(s) address (loopback and private "
                                                 "networks only when listed).")
    webhook_attempts: int = Field(5, ge=1, le=20, description="Tries per webhook delivery (connection "
                                                              "errors and 5xx are retried).")
    webhook_backoff: float = Field(4.0, ge=0, description="Seconds before the first webhook retry; "
                                                          "doubles each time (4 s: 5 tries in ~1 min).")
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds one webhook attempt may take.")
    events_heartbeat: float = Field(15.0, gt=0, description="Seconds between keep-alive comments on "
                                                            "/jobs/<id>/events.")
    events_max_seconds: float = Field(600.0, gt=0, description="Longest an event stream stays open; the "
                                                               "client reconnects for more.")
    events_max_streams: int = Field(8, ge=1, description="Event streams open at once (each holds a server "
                                                         "thread); more answer 429.")
    events_max_streams_per_user: int = Field(3, ge=1, description="With network_access on, event streams "
                                                                   "and websockets one user may hold open.")
    idle_timeout: float = Field(20.0, gt=0, le=3600, description="Seconds a connection may stay open with no "
                                                                 "request in progress before it is closed.")
    connection_limit: int = Field(8000, ge=100, description="Connections open at once (raised to fit the "
                                                            "process's file limit).")
    request_head_timeout: float = Field(10.0, gt=0, le=600, description="Seconds a connection has to send a "
                                                                       "complete request head (request line and "
                                                                       "headers); later: 408, closed.")
    connections_per_address: int = Field(200, ge=0, description="Connections one client address (IPv6: one /64) "
                                                                "may hold open; more get 429 (0 = no cap; "
                                                                "trusted_proxies are not capped).")
    front_max_nodes: int = Field(2000, ge=1, description="Most nodes in a graph sent to the ComfyUI front.")
    front_max_graph_mb: float = Field(4.0, gt=0, description="Largest POST /prompt body of the ComfyUI front "
                                                             "in MiB.")
    edit_max_megapixels: float = Field(40.0, gt=0, description="Most megapixels of a photo edited at full "
                                                               "resolution (/edit).")
    edit_memory_mb: int = Field(1024, ge=64, description="Memory full-resolution edits may use together; "
                                                         "sets how many run at once.")
    rate_limits_user: dict[str, str] = Field(default_factory=dict,
                                             description="Per-user rate limits by class (links, jobs, "
                                                         "uploads, hits, gpu_seconds), in the limits notation: "
                                                         "{\"links\": \"30/minute;500/day\"}.")
    rate_limits_address: dict[str, str] = Field(default_factory=dict,
                                                description="Per-client-address rate limits by class, like "
                                                            "rate_limits_user.")
    trusted_proxies: list[str] = Field(default_factory=list,
                                       description="Addresses or networks of reverse proxies whose "
                                                   "X-Forwarded-For names the client address.")
    jobs_keep_days: float = Field(30.0, ge=0, description="Finished jobs, their events and unused uploads "
                                                          "are pruned after this many days (0 = never).")
    webhook_legacy_signature: bool = Field(True, description="Also sign webhooks with the older "
                                                             "X-LinkPix-Signature header (HMAC of the body).")
    dashboard_user: str = Field("", description="Login name for the dashboard; required (with "
                                                "dashboard_password) when network_access is on.")
    dashboard_password: str = Field("", description="Password for the dashboard login; better set as "
                                                    "LINKPIX_DASHBOARD_PASSWORD than in config.json.")
    # The fronts (web/fronts/): other tools' dialects answered on the same port.
    fronts: list[Literal["a1111", "openai", "comfy", "v2"]] = Field(
        default_factory=lambda: ["a1111", "openai", "comfy", "v2"],
        description="Dialects LinkPix also speaks: a1111 (/sdapi/v1/), openai (/v1/images/), comfy (ComfyUI's "
                    "API at / and /comfy/), v2 (the Comfy API v2 at /api/v2/); leave one out to turn it off.")
    fronts_allow: list[str] = Field(default_factory=list,
                                    description="Addresses or networks (192.168.1.20, 10.0.0.0/8) whose "
                                                "clients may use the fronts without an API key when "
                                                "network_access is on (SillyTavern's ComfyUI source "
                                                "cannot send one).")
    a1111_workflow: str = Field("", description="Workflow for /sdapi/v1/txt2img and /v1/images/generations "
                                                "without a model; empty: the default workflow.")
    a1111_img2img_workflow: str = Field("sd15_img2img.json",
                                        description="Workflow for /sdapi/v1/img2img (it must take an input "
                                                    "image).")
    a1111_inpaint_workflow: str = Field("sd15_inpaint.json",
                                        description="Workflow for /sdapi/v1/img2img and /v1/images/edits "
                                                    "with a mask (it must take an image and a mask); "
                                                    "/v1/images/edits without one uses edit_workflow.")
    # Several replicas (issue 14): coordination through Redis, images on shared storage (linkpix/shared/).
    redis_url: str = Field("", description="Redis (or Valkey) shared by every replica, e.g. "
                                           "redis://127.0.0.1:6379/0; empty: everything stays in this process.")
    replica_name: str = Field("", pattern=r"^[A-Za-z0-9_.:-]{0,64}$",
                              description="This replica's name in /health, logs and a job's replica field "
                                          "(default host:api_port).")
    replica_lease: float = Field(15.0, ge=1, le=600, description="Seconds a claim (a run, a job) of a replica "
                                                                 "that died lasts before another takes it over.")
    storage: Literal["disk", "s3"] = Field("disk", description="Where cached images live: disk (output_dir, a "
                                                               "shared folder for replicas) or s3.")
    s3_bucket: str = Field("", description="Bucket of the image cache with storage s3.")
    s3_endpoint: str = Field("", description="URL of an S3-compatible server (empty: Amazon S3).")
    s3_region: str = Field("us-east-1", description="Region of the bucket.")
    s3_access_key: str = Field("", description="Access key (empty: boto3's usual sources, e.g. AWS_ACCESS_KEY_ID).")
    s3_secret_key: str = Field("", description="Secret key (prefer LINKPIX_S3_SECRET_KEY in .env).")
    s3_prefix: str = Field("", description="Prefix of every object name in the bucket (e.g. linkpix/).")
    s3_redirect: bool = Field(False, description="Answer a cached picture with a redirect to a presigned URL "
                                                 "instead of streaming it through LinkPix.")
    s3_url_seconds: int = Field(3600, ge=60, le=604800, description="Lifetime of a presigned URL (s3_redirect).")

    @field_validator("comfyui_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("cpu_pin", mode="before")
    @classmethod
    def _cpu_pin_is_no_boolean(cls, v: Any) -> Any:
        if isinstance(v, bool):  # JSON true would pass as CPU 1
            raise ValueError('a CPU number (0, 1, ...), "auto" or "off", not true or false')
        return v

    @field_validator("comfyui_urls", mode="before")
    @classmethod
    def _backend_list(cls, value: Any) -> Any:
        """A comma-separated string (the environment) or a JSON list; each item a URL or an object."""
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [u for u in text.split(",") if u.strip()]
        if isinstance(value, list):
            return [{"url": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("providers")
    @classmethod
    def _unique_providers(cls, value: list[ProviderSpec]) -> list[ProviderSpec]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError(f"provider names must differ (got {', '.join(names)})")
        return value

    @field_validator("provider_fallback")
    @classmethod
    def _known_fallback(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        names = [p.name for p in info.data.get("providers", [])]
        named = value.partition(":")[0]
        if value and value not in ("auto", "none") and named not in names:
            raise ValueError(f"{value!r} names no configured provider (providers: {', '.join(names) or 'none'}; "
                             "or auto, or empty)")
        return value

    @field_validator("comfyui_urls")
    @classmethod
    def _distinct_backends(cls, value: list[BackendSpec]) -> list[BackendSpec]:
        for what, values in (("name", [b.label for b in value]), ("URL", [b.url for b in value])):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"two backends have the {what} {twice[0]!r}")
        return value

    def backends(self) -> list[BackendSpec]:
        """The pool: `comfyui_urls`, or the one backend of `comfyui_url`."""
        return list(self.comfyui_urls) or [BackendSpec(url=self.comfyui_url)]

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix:// (e.g. redis://127.0.0.1:6379/0)")
        return value

    @field_validator("s3_bucket")
    @classmethod
    def _bucket_for_s3(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("storage") == "s3" and not value.strip():
            raise ValueError("storage is s3: name the bucket (s3_bucket)")
        return value.strip()

    @field_validator("rate_limits_user", "rate_limits_address")
    @classmethod
    def _rates(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        parse_rates(value)
        if info.field_name == "rate_limits_address" and "gpu_seconds" in value:
            raise ValueError("gpu_seconds is counted per user: put it in rate_limits_user")
        return value

    @field_validator("fair_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(user for user, weight in value.items() if not 0.01 <= weight <= 1000)
        if bad:
            raise ValueError(f"a weight is a number from 0.01 to 1000 (1 is an equal share): {', '.join(bad)[:200]}")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value

    @field_validator("fronts_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (e.g. 192.168.1.20 or "
                                 "10.0.0.0/8)") from None
        return [item.strip() for item in value]

    @field_validator("admin_keys")
    @classmethod
    def _admin_keys_are_keys(cls, value: list[str], info: ValidationInfo) -> list[str]:
        unknown = [k for k in value if k not in (info.data.get("api_keys") or {})]
        if unknown:  # never echo a key into a log
            raise ValueError(f"{len(unknown)} key(s) not in api_keys; an admin key must also be an API key "
                             "(it names the admin's user)")
        return value

    @property
    def strips_metadata(self) -> bool:
        """strip_metadata as set, or on when LinkPix is open to the network."""
        return self.network_access if self.strip_metadata is None else self.strip_metadata

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings],
                                   init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over them.
        return env_settings, dotenv_settings, init_settings

    @property
    def backend_urls(self) -> list[str]:
        """Base URLs of every ComfyUI backend LinkPix uses (webhooks may never go to one): comfyui_url,
        plus the pool's comfyui_urls."""
        return [self.comfyui_url, *(b.url for b in self.comfyui_urls)]

    @property
    def bind_host(self) -> str:
        return "0.0.0.0" if self.network_access else "127.0.0.1"

    @property
    def stream_slots(self) -> int:
        """How many event streams (SSE, websockets) may be open at once: each holds a server thread, so
        leave 4 free beside the ones pending generations may hold."""
        return max(1, min(self.events_max_streams, self.threads - self.max_pending - 4))

    def check_rules(self) -> None:
        """The rules between fields that a server start needs (ConfigError naming them)."""
        if self.threads < self.max_pending + 8:
            raise ConfigError(f"'threads' ({self.threads}) must exceed 'max_pending' "
                              f"({self.max_pending}) by at least 8, so cached images are never "
                              f"stuck behind pending generations")
