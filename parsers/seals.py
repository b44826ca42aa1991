"""Red seal impressions (公章) on a page image: found by colour and shape.

A Chinese official seal is a red ring (often with a star and curved text inside), 38–45 mm
across. On a scan or a phone photo that is a roughly round blob of red pixels a few
centimetres wide. Red ink of a pen signature or a red printed heading is neither round nor
that big, so colour + size + roundness tell seals from everything else on the form.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SEAL_MM = (25, 60)        # diameters a seal can have on paper (the 42 mm county seal, 30 mm ones)
MIN_ROUNDNESS = 0.6       # area of the blob / area of its enclosing circle
MIN_INK = 0.08            # share of the enclosing circle covered by red ink (a ring: ~0.15+)


@dataclass
class Seal:
    x: float              # centre, in pixels of the image given
    y: float
    radius: float


def red_mask(rgb: np.ndarray) -> np.ndarray:
    """255 where a pixel is seal red: hue near 0°/180°, saturated, not dark. Scans fade the
    red to pink and phone photos darken it, hence the wide saturation and value bounds."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    low = cv2.inRange(hsv, (0, 60, 80), (12, 255, 255))
    high = cv2.inRange(hsv, (160, 60, 80), (180, 255, 255))
    return cv2.bitwise_or(low, high)


def find_seals(rgb: np.ndarray, dpi: float) -> list[Seal]:
    """The seal impressions on a page whose resolution is `dpi` (pixels per inch)."""
    mask = red_mask(rgb)
    px_per_mm = dpi / 25.4
    # Close the gaps between the ring, the star and the characters: one blob per seal.
    size = max(3, int(px_per_mm * 3)) | 1
    blob = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    seals = []
    for contour in contours:
        (x, y), radius = cv2.minEnclosingCircle(contour)
        diameter_mm = 2 * radius / px_per_mm
        if not SEAL_MM[0] <= diameter_mm <= SEAL_MM[1]:
            continue
        circle = np.pi * radius * radius
        hull = cv2.contourArea(cv2.convexHull(contour))
        if hull / circle < MIN_ROUNDNESS:
            continue
        if _ink_share(mask, x, y, radius) < MIN_INK:
            continue
        seals.append(Seal(float(x), float(y), float(radius)))
    return seals


def _ink_share(mask: np.ndarray, x: float, y: float, radius: float) -> float:
    disc = np.zeros(mask.shape, np.uint8)
    cv2.circle(disc, (int(x), int(y)), int(radius), 255, -1)
    inside = cv2.countNonZero(disc)
    return cv2.countNonZero(cv2.bitwise_and(mask, disc)) / inside if inside else 0.0


def without_red(rgb: np.ndarray) -> np.ndarray:
    """The page as its red channel alone, in grey: red ink becomes a light grey close to the
    paper, while black print — ruling lines and text under a seal too — stays dark. So a seal
    stamped over the date and the table's lines garbles neither the text nor the cells."""
    red = np.ascontiguousarray(rgb[:, :, 0])
    return cv2.merge([red, red, red])
