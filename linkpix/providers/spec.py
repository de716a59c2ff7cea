"""The `providers` setting: one entry per hosted API, and the `<provider>:<model>` references that name one."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FEATURES = ("txt2img", "img2img", "inpainting")
# What each kind can do unless an entry says otherwise: OpenAI's /images/edits takes an image and a mask;
# BFL's Kontext models take an input image, its fill model an image and a mask.
DEFAULT_FEATURES = {"openai": list(FEATURES), "bfl": list(FEATURES)}


class ProviderSpec(BaseModel):
    """One hosted images API. Its key is read from the environment variable `api_key_env` at call time,
    so the key never sits in config.json, a log line or /health."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$", description="How `model=<name>:<model>` names it.")
    kind: Literal["openai", "bfl"] = Field(description="openai: any OpenAI-compatible images API; bfl: BFL's "
                                                       "FLUX API (submit, then poll polling_url).")
    url: str = Field(description="Base URL, e.g. https://api.openai.com/v1 or https://api.bfl.ai/v1.")
    api_key_env: str = Field("", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$|^$",
                             description="Environment variable holding the API key.")
    models: list[str] = Field(min_length=1, description="Model names this provider may be asked for.")
    priority: int = Field(1, ge=0, le=1000, description="Lower goes first when several providers fit.")
    features: list[Literal["txt2img", "img2img", "inpainting"]] = Field(
        default_factory=list, description="What it may be used for (default: all the kind supports).")
    cost_per_image: float = Field(0.0, ge=0, description="Cost counted per image (your currency).")
    cost_per_megapixel: float = Field(0.0, ge=0, description="Cost counted per megapixel of output.")
    timeout: float = Field(120.0, gt=0, le=3600, description="Seconds for one whole provider run.")
    retries: int = Field(2, ge=0, le=10, description="Retries of a call that failed for a passing reason "
                                                     "(connection error, 5xx, 429 with a short Retry-After).")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _default_features(self) -> ProviderSpec:
        if not self.features:
            object.__setattr__(self, "features", list(DEFAULT_FEATURES[self.kind]))
        return self

    def cost(self, width: int, height: int) -> float:
        """What one image of this size costs, as configured."""
        return self.cost_per_image + self.cost_per_megapixel * width * height / 1_000_000


def split_ref(value: object) -> tuple[str, str] | None:
    """`openai:gpt-image-1` -> ("openai", "gpt-image-1"); anything else (a checkpoint file name) -> None."""
    if not isinstance(value, str) or ":" not in value:
        return None
    provider, _, model = value.partition(":")
    if not provider or not model or "/" in provider or "\\" in provider:
        return None
    return provider, model
