"""Text on a page image, with positions: rapidocr (PP-OCRv4 models shipped in its wheel, run by
onnxruntime on the CPU; nothing is downloaded). Optional: without the `[ocr]` extra intake
treats scans as evidence only, as before.

The engine is created once per process (`engine()`), in the worker before the sandbox forks,
so each scan costs the reading, not the 1–5 s of loading the models. onnxruntime is told to
run on the calling thread alone: a thread pool created before fork() would not exist in the
child, and the child would wait for it forever.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

log = logging.getLogger("intake.ocr")

DET_MAX_SIDE = 1280      # the text detector sees the page at most this large (speed; 150 dpi text stays ≥ 14 px)


@dataclass
class TextBox:
    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float         # the recogniser's mean character confidence, 0..1

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2


@functools.cache
def engine():
    """The OCR engine, or None when the `[ocr]` extra is not installed (said once in the log)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except Exception as exc:  # noqa: BLE001 — ImportError, or cv2 missing libGL
        log.warning("OCR is not available (%s): scanned forms are kept as evidence only; "
                    "install intake with the [ocr] extra to read them", exc)
        return None
    return RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1, use_cls=False,
                    det_limit_side_len=DET_MAX_SIDE, det_limit_type="max")


def available() -> bool:
    return engine() is not None


def read_boxes(image) -> tuple[list[TextBox], bool]:
    """Every line of text on an RGB page (numpy array), and whether the page had to be
    turned half round to read it (the direction classifier's vote over the lines found);
    the boxes are then in the turned page's coordinates."""
    eng = engine()
    found, _ = eng.text_det(image)
    if found is None or not len(found):
        return [], False
    flipped = _upside_down(eng, eng.get_crop_img_list(image, found[:40]))
    if flipped:
        image = image[::-1, ::-1].copy()
        found, _ = eng.text_det(image)
        if found is None or not len(found):
            return [], True
    read, _ = eng.text_rec(eng.get_crop_img_list(image, found))
    boxes = [_box(points, text, score) for points, (text, score) in zip(found, read)]
    return sorted((b for b in boxes if b.text.strip()), key=lambda b: (b.y0, b.x0)), flipped


def _box(points, text: str, score: float) -> TextBox:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return TextBox(text, float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys)), float(score))


def _upside_down(eng, crops) -> bool:
    _, labels, _ = eng.text_cls(crops)
    flipped = sum(1 for label, conf in labels if label == "180" and conf > 0.8)
    upright = sum(1 for label, conf in labels if label == "0" and conf > 0.8)
    return flipped > upright
