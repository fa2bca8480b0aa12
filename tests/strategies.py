"""Hypothesis strategies shared by the layer tests: the shapes the engine issue asks for.

batch 1–4, spatial sizes 1–12 (odd sizes, and sizes smaller than the kernel with "same"),
channels 1–5, kernels 1–5 including non-square, strides 1–3, both paddings.
"""

from hypothesis import strategies as st

PADDINGS = st.sampled_from(["valid", "same"])


@st.composite
def window_case(draw, max_channels=5):
    """A sliding-window layer case: (batch, H, W, C, (kh, kw), (sh, sw), padding)."""
    padding = draw(PADDINGS)
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    strides = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # "valid" needs the kernel to fit; "same" also gets inputs smaller than the kernel.
    min_h, min_w = (kernel if padding == "valid" else (1, 1))
    h = draw(st.integers(min_h, 12))
    w = draw(st.integers(min_w, 12))
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, max_channels))
    return n, h, w, c, kernel, strides, padding


seeds = st.integers(0, 2**32 - 1)
