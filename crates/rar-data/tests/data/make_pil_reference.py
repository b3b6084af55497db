"""Regenerates the Pillow reference images for tests/preprocess_pil.rs.

The inputs are deterministic patterns; the outputs are what the reference pretokenization
script's `center_crop_arr` (guided-diffusion / ADM) produces with Pillow. Run with any recent
Pillow (generated with 13.0.0):  python3 make_pil_reference.py
"""
import math
from PIL import Image


def center_crop_arr(pil_image, image_size):
    # Same steps as scripts/pretokenization.py (ADM's centre crop).
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    w, h = pil_image.size
    top, left = (h - image_size) // 2, (w - image_size) // 2
    return pil_image.crop((left, top, left + image_size, top + image_size))


def pattern(w, h, seed):
    img = Image.new("RGB", (w, h))
    px = img.load()
    for y in range(h):
        for x in range(w):
            r = int(127.5 + 127.5 * math.sin(x * 0.07 + seed) * math.cos(y * 0.05))
            g = (x * 3 + y * 5 + seed * 17) % 256
            b = 255 if ((x // 7) + (y // 5)) % 2 else 0
            px[x, y] = (r, g, b)
    return img


for name, (w, h), size in [
    ("wide", (1203, 611), 281),   # two BOX halvings (odd sizes), then bicubic down
    ("tall", (150, 333), 281),    # bicubic up-sampling
    ("small", (97, 80), 256),     # the centre + flip mode's size
]:
    src = pattern(w, h, len(name))
    src.save(f"pil_{name}_input.png")
    center_crop_arr(src, size).save(f"pil_{name}_adm{size}.png")
