"""Brand images: Home Assistant shows the ones a custom integration ships in brand/ (2026.3+)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from PIL import Image
import pytest

from custom_components.homeiq.const import DOMAIN

BRAND = Path(__file__).resolve().parents[2] / "custom_components" / DOMAIN / "brand"
ICONS = {"icon.png", "dark_icon.png", "icon@2x.png", "dark_icon@2x.png"}
LOGOS = {"logo.png", "dark_logo.png", "logo@2x.png", "dark_logo@2x.png"}
# Where Home Assistant's light and dark themes put the images.
LIGHT_BACKGROUND = (255, 255, 255)
DARK_BACKGROUND = (17, 17, 17)


def _luminance(rgb: tuple[int, ...]) -> float:
    def linear(channel: int) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """WCAG contrast ratio."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _name_color(logo: Image.Image) -> tuple[int, ...]:
    """The most common opaque color right of the square icon: the name's letters."""
    width, height = logo.size
    letters = logo.crop((height, 0, width, height)).convert("RGBA")
    colors = letters.getcolors(letters.width * letters.height) or []
    return max((count, color) for count, color in colors if color[3] == 255)[1]


def test_brand_images_follow_the_brands_rules() -> None:
    """PNG with transparency; icons 256/512 square; logos landscape, shortest side 128-256
    (256-512 for @2x); the name in a dark variant readable on a dark background."""
    assert {path.name for path in BRAND.iterdir()} == ICONS | LOGOS
    for name in ICONS | LOGOS:
        scale = 2 if "@2x" in name else 1
        with Image.open(BRAND / name) as image:
            assert image.format == "PNG", name
            assert image.mode == "RGBA", name
            width, height = image.size
            if name in ICONS:
                assert (width, height) == (256 * scale, 256 * scale), name
            else:
                assert width > height, name
                assert 128 * scale <= height <= 256 * scale, name
                background = DARK_BACKGROUND if name.startswith("dark_") else LIGHT_BACKGROUND
                assert _contrast(_name_color(image), background) >= 4.5, name


async def test_home_assistant_serves_the_brand_images(
    hass: HomeAssistant, hass_client: Any
) -> None:
    """What the frontend asks for is what brand/ holds (the endpoint exists from 2026.3)."""
    brands = pytest.importorskip("homeassistant.components.brands.const")
    assert brands.ALLOWED_IMAGES == ICONS | LOGOS
    assert await async_setup_component(hass, "brands", {})
    client = await hass_client()
    for name in sorted(ICONS | LOGOS):
        response = await client.get(f"/api/brands/integration/{DOMAIN}/{name}")
        assert response.status == 200, name
        assert await response.read() == (BRAND / name).read_bytes(), name
