"""The published SeLo v1 pipelines, transcribed as test oracles (not part of selo).

- :func:`georsclip_tool`: the AIR-SLT part of om-ai-lab/RS5M
  ``inference/inference_tool.py`` (``AIR_SLT.split_image`` and ``__getitem__``,
  ``semantic_localization_evaluation``) with its ``get_preprocess(224)``:
  windows resized to 256 with OpenCV bicubic and written as JPEG (quality 95,
  OpenCV's default), read back with PIL, torchvision's ``Resize(224, BICUBIC)``,
  ``CenterCrop``, ``ToTensor``, ``Normalize`` (OpenAI statistics), one window at
  a time through an open_clip model in fp32, cosine scores.
- :func:`generate_selo_amfmn`: xiaoyuan1996/SemanticLocalizationMetrics
  ``predict/generate_selo.py`` (``split_image``, ``generate_heatmap``) with
  ``predict/model_encoder.py``'s AMFMN encoder (see ``published_amfmn``).

Both then average the scores per pixel, min-max normalise, cast with
``np.uint8(255 * p)`` and run ``cv2.medianBlur(·, 251)``; returned is that
map before it is written as JPEG (``probmap``), and the scores by window file
name ``r0_r1_c0_c1``. The per-pixel division loop is written as one division
(the same IEEE operation per pixel).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image


def split_image(img_path: Path, steps: list[int], subimages_dir: Path) -> None:
    """``split_image`` of both tools (the same code): cut, resize to 256, write JPEG."""
    subimages_dir.mkdir(parents=True, exist_ok=True)
    source_img = cv2.imread(str(img_path))
    img_weight = np.shape(source_img)[0]
    img_height = np.shape(source_img)[1]
    for step in steps:
        for gap in [step, 0.5 * step]:
            gap = int(gap)
            for h in range(0 + (step - gap), img_height, step):
                h_start, h_end = h, h + step
                if h_end >= img_height:
                    h_start, h_end = img_height - step, img_height
                for w in range(0 + (step - gap), img_weight, step):
                    w_start, w_end = w, w + step
                    if w_end >= img_weight:
                        w_start, w_end = img_weight - step, img_weight
                    cut_img_name = f"{w_start}_{w_end}_{h_start}_{h_end}.jpg"
                    cut_img = source_img[w_start:w_end, h_start:h_end]
                    cut_img = cv2.resize(cut_img, (256, 256), interpolation=cv2.INTER_CUBIC)
                    cv2.imwrite(str(subimages_dir / cut_img_name), cut_img)


def probmap(img_path: Path, names: list[str], sims: list[float]) -> np.ndarray:
    """Heat map, normalisation and median filter of ``generate_heatmap``."""
    source_img = cv2.imread(str(img_path))
    img_row, img_col = np.shape(source_img)[:2]
    heat_map = np.zeros([img_row, img_col], dtype=float)
    heat_num = np.zeros([img_row, img_col], dtype=float)
    for idx, file in enumerate(names):
        r_start, r_end, c_start, c_end = file.replace(".jpg", "").split("_")
        heat_map[int(r_start) : int(r_end), int(c_start) : int(c_end)] += sims[idx]
        heat_num[int(r_start) : int(r_end), int(c_start) : int(c_end)] += 1
    heat_map = heat_map / heat_num
    adaptive = np.asarray(heat_map)
    adaptive = adaptive - np.min(adaptive)
    prob = adaptive / np.max(adaptive)
    prob = np.uint8(255 * prob)
    return cv2.medianBlur(prob, 251)


def georsclip_preprocess(image_resolution: int = 224):
    """``get_preprocess(image_resolution, is_train=False, subset_name="clip")``."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(
                size=image_resolution, interpolation=transforms.InterpolationMode.BICUBIC
            ),
            transforms.CenterCrop(image_resolution),
            lambda image: image.convert("RGB"),
            transforms.ToTensor(),
            transforms.Normalize(
                mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711]
            ),
        ]
    )


def georsclip_tool(
    img_path: Path, text: str, model, workdir: Path, steps=(256, 512, 768)
) -> tuple[dict[str, float], np.ndarray]:
    """Scores by window name and the probmap of one AIR-SLT case, as the RS5M tool makes them."""
    import open_clip

    subimages_dir = workdir / "subimages"
    split_image(img_path, list(steps), subimages_dir)
    transform = georsclip_preprocess(224)
    subimages = os.listdir(subimages_dir)
    subimgs = torch.vstack(
        [transform(Image.open(subimages_dir / name)).unsqueeze(0) for name in subimages]
    )
    with torch.no_grad():
        tokens = open_clip.tokenize([text])
        text_features = model.encode_text(tokens)
        text_features /= text_features.norm(dim=-1, keepdim=True)
        sim_results = []
        for subimage in subimgs:
            sub_img_feat = model.encode_image(subimage.unsqueeze(0))
            sub_img_feat /= sub_img_feat.norm(dim=-1, keepdim=True)
            sim_results.append(float((sub_img_feat * text_features).sum().numpy()))
    names = [n.replace(".jpg", "") for n in subimages]
    return dict(zip(names, sim_results, strict=True)), probmap(img_path, subimages, sim_results)


def generate_selo_amfmn(
    img_path: Path, tokens: list[str], model, word2idx, workdir: Path, steps=(256, 512, 768)
) -> tuple[dict[str, float], np.ndarray]:
    """Scores by window name and the probmap of ``generate_selo.py`` with AMFMN.

    ``tokens`` are what ``nltk.tokenize.word_tokenize(text.lower())`` gives.
    """
    import published_amfmn as published

    subimages_dir = workdir / "subimages"
    split_image(img_path, list(steps), subimages_dir)
    text_vector = published.text_encoder(model, word2idx, tokens)
    subimages = os.listdir(subimages_dir)
    sim_results = []
    for subimage in subimages:
        image_vector = published.image_encoder(model, Image.open(subimages_dir / subimage))
        sim_results.append(published.cosine_sim(text_vector, image_vector))
    names = [n.replace(".jpg", "") for n in subimages]
    return dict(zip(names, sim_results, strict=True)), probmap(img_path, subimages, sim_results)
