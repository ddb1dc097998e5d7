"""What a model call cost, from its usage, priced by the genai-prices package.

No price table of our own. A model genai-prices does not know is an unknown
cost (None), reported with a warning, never counted as zero.
"""

from __future__ import annotations

from functools import lru_cache

from genai_prices import Usage as PriceUsage
from genai_prices import calc_price

from .base import Usage

PRICE_PROVIDERS = {"anthropic": "anthropic", "openai": "openai"}


def price(model_id: str, provider: str, usage: Usage) -> float | None:
    """US dollars for one call, or None when the price is unknown (scripted: 0, it is free)."""
    if provider == "scripted":
        return 0.0
    cache_read = getattr(usage, "cache_read_tokens", 0)
    cache_write = getattr(usage, "cache_write_tokens", 0)
    priced = PriceUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                        cache_read_tokens=cache_read or None, cache_write_tokens=cache_write or None)
    try:
        return float(calc_price(priced, model_id, provider_id=PRICE_PROVIDERS.get(provider)).total_price)
    except LookupError:
        return None


@lru_cache(maxsize=256)
def known(model_id: str, provider: str) -> bool:
    return price(model_id, provider, Usage(1, 1)) is not None


def per_million(model_id: str, provider: str) -> tuple[float | None, float | None]:
    """(input, output) US dollars per million tokens, for `%osqr models`."""
    if provider == "scripted":
        return 0.0, 0.0
    one_in = price(model_id, provider, Usage(1_000_000, 0))
    one_out = price(model_id, provider, Usage(0, 1_000_000))
    return one_in, one_out
