"""The room picture: participants' videos as tiles of a grid, composed in YUV 4:2:0 with numpy.

Every tile has the same size; a picture is scaled to fit its tile keeping its aspect ratio
(black bars fill the rest); a tile without a picture is black.
"""

from __future__ import annotations

import math

import av
import numpy as np
import numpy.typing as npt

Plane = npt.NDArray[np.uint8]
BLACK_Y, BLACK_UV = 16, 128  # video-range black


def grid(count: int) -> tuple[int, int]:
    """``(columns, rows)`` of a grid for `count` tiles: as square as possible, wide first."""
    if count <= 0:
        return 0, 0
    columns = math.ceil(math.sqrt(count))
    return columns, math.ceil(count / columns)


def fit(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest even size with the aspect ratio of width x height inside the box."""
    scale = min(box_width / width, box_height / height)
    fitted_w = max(2, min(box_width, int(width * scale) // 2 * 2))
    fitted_h = max(2, min(box_height, int(height * scale) // 2 * 2))
    return fitted_w, fitted_h


class TileCanvas:
    """A canvas of `count` tiles of `tile` size; ``frame(pictures)`` composes one output frame."""

    def __init__(self, count: int, tile: tuple[int, int]) -> None:
        self.tile = tile
        self.columns, self.rows = grid(count)
        self.width = self.columns * tile[0]
        self.height = self.rows * tile[1]
        self._scaled: list[tuple[av.VideoFrame, tuple[Plane, Plane, Plane]] | None] = [None] * count

    def _scale(self, index: int, picture: av.VideoFrame) -> tuple[Plane, Plane, Plane]:
        cached = self._scaled[index]
        if cached is not None and cached[0] is picture:
            return cached[1]
        width, height = fit(picture.width, picture.height, *self.tile)
        scaled = picture.reformat(width=width, height=height, format="yuv420p")
        planes = (
            _plane(scaled, 0, width, height),
            _plane(scaled, 1, width // 2, height // 2),
            _plane(scaled, 2, width // 2, height // 2),
        )
        self._scaled[index] = (picture, planes)
        return planes

    def frame(self, pictures: list[av.VideoFrame | None]) -> av.VideoFrame:
        """The output frame with `pictures[i]` in tile i (None: black)."""
        y = np.full((self.height, self.width), BLACK_Y, dtype=np.uint8)
        u = np.full((self.height // 2, self.width // 2), BLACK_UV, dtype=np.uint8)
        v = np.full((self.height // 2, self.width // 2), BLACK_UV, dtype=np.uint8)
        tile_w, tile_h = self.tile
        for index, picture in enumerate(pictures):
            if picture is None:
                self._scaled[index] = None
                continue
            py, pu, pv = self._scale(index, picture)
            column, row = index % self.columns, index // self.columns
            h, w = py.shape
            x0 = column * tile_w + (tile_w - w) // 2 // 2 * 2
            y0 = row * tile_h + (tile_h - h) // 2 // 2 * 2
            y[y0 : y0 + h, x0 : x0 + w] = py
            u[y0 // 2 : y0 // 2 + h // 2, x0 // 2 : x0 // 2 + w // 2] = pu
            v[y0 // 2 : y0 // 2 + h // 2, x0 // 2 : x0 // 2 + w // 2] = pv
        data = np.concatenate((y.ravel(), u.ravel(), v.ravel()))
        return av.VideoFrame.from_ndarray(
            data.reshape(self.height * 3 // 2, self.width), format="yuv420p"
        )


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> Plane:
    """One plane of a frame as a (height, width) array without its line padding."""
    plane = frame.planes[index]
    rows = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(-1, plane.line_size)
    return rows[:height, :width].copy()
