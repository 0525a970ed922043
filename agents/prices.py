"""What a model's tokens cost: the configured prices, else a default table for common models, each price saying
where it came from so that what the user sees can mark a default as one.

Prices are USD per million tokens (prompt, completion). A model configured with both prices 0 (the setting's
default) takes the table's entry when the table knows it; a model neither configured nor in the table costs
nothing and is shown as "no price". The table is a convenience, not a bill: providers change prices, so every
place that shows a table price says "(default price)"; set `price_in_per_mtok` / `price_out_per_mtok` in the
config to use your own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

PriceSource = Literal["config", "default", "none"]
DEFAULT_PRICE_MARK = "(default price)"

# (USD per million prompt tokens, USD per million completion tokens); a name matches itself and its dated or
# suffixed versions (`claude-sonnet-4-20250514` is `claude-sonnet-4`), the longest matching name winning.
DEFAULT_PRICES_PER_MTOK: Mapping[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "o3": (2.00, 8.00),
    "o4-mini": (1.10, 4.40),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "deepseek-chat": (0.27, 1.10),
    "deepseek-reasoner": (0.55, 2.19),
}


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """A model's prices and where they came from (config, the default table, or none known)."""

    price_in_per_mtok: float = 0.0
    price_out_per_mtok: float = 0.0
    source: PriceSource = "none"

    @property
    def pair(self) -> tuple[float, float]:
        """(in, out) USD per million tokens."""
        return self.price_in_per_mtok, self.price_out_per_mtok

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_in_per_mtok + output_tokens * self.price_out_per_mtok) / 1e6

    def label(self) -> str:
        """'$0.15 / $0.60 per Mtok (default price)', '$1 / $2 per Mtok', 'no price'."""
        if self.source == "none":
            return "no price"
        text = f"${self.price_in_per_mtok:g} / ${self.price_out_per_mtok:g} per Mtok"
        return f"{text} {DEFAULT_PRICE_MARK}" if self.source == "default" else text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelPrice:
        source = data.get("source")
        return cls(float(data.get("price_in_per_mtok") or 0.0), float(data.get("price_out_per_mtok") or 0.0),
                   source if source in ("config", "default", "none") else "none")


def default_price(model: str) -> tuple[float, float] | None:
    """The table's prices for `model` (a `provider:` prefix ignored), or None when the table does not know it."""
    name = model.rsplit(":", 1)[-1].strip().lower()
    known = [k for k in DEFAULT_PRICES_PER_MTOK if name == k or name.startswith(k + "-")]
    return DEFAULT_PRICES_PER_MTOK[max(known, key=len)] if known else None


def resolve_price(model: str, price_in_per_mtok: float = 0.0, price_out_per_mtok: float = 0.0) -> ModelPrice:
    """The configured prices when any is set, else the default table's, else none."""
    if price_in_per_mtok or price_out_per_mtok:
        return ModelPrice(price_in_per_mtok, price_out_per_mtok, "config")
    table = default_price(model)
    return ModelPrice(*table, "default") if table else ModelPrice()
