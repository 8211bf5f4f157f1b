"""AffectAugment parts that need no Synthesizer: validation, draws, structures, labels, pickling, caches."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from affectsynth.blendshapes.targets import VA, AUs, Expression
from affectsynth.labels import UnsupportedTargetError
from affectsynth.result import SynthLabels, TargetLabels
from affectsynth.transform import AffectAugment, AugmentParams, MissingLabelError, image_digest


def _images(n: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("kw,exc,needle", [
    ({"p": 1.5}, ValueError, "p must be"),
    ({"intensity": (0.8, 0.2)}, ValueError, "intensity"),
    ({"targets": ("joyful",)}, ValueError, "unknown expression"),
    ({"targets": ()}, ValueError, "at least one"),
    ({"targets": ("contempt",)}, UnsupportedTargetError, "contempt"),
    ({"targets": "va"}, UnsupportedTargetError, "label_preset='va'"),
    ({"targets": (AUs({"AU12": 1.0}),), "label_preset": "va"}, UnsupportedTargetError, "aus"),
    ({"targets": (42,)}, ValueError, "targets must be"),
    ({"label_preset": "ck+"}, ValueError, "label preset"),
    ({"cache": -1}, ValueError, "cache"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"label_preset": None}, ValueError, "rewrite_labels=False"),
])
def test_construction_validates(kw, exc, needle):
    with pytest.raises(exc, match=needle):
        AffectAugment(**kw)


def test_valid_constructions():
    assert len(AffectAugment()._templates) == 6  # the defaults work with the default preset
    AffectAugment(("contempt", "happy"), label_preset="affectnet")
    AffectAugment("va", label_preset="va")
    AffectAugment((VA(0.3, 0.4), Expression("fear", 0.5)), label_preset="va")
    AffectAugment((AUs({"AU12": 1.0}),), label_preset=None, rewrite_labels=False)
    AffectAugment(("contempt",), rewrite_labels=False)  # no labels written: no preset to satisfy


def test_draw_depends_only_on_seed_content_epoch():
    imgs = _images()
    a = AffectAugment(("happiness", "surprise", "fear"), p=0.5, seed=3)
    b = AffectAugment(("happiness", "surprise", "fear"), p=0.5, seed=3)
    pa = [a.sample_params(i) for i in imgs]
    pb = [b.sample_params(i) for i in reversed(imgs)][::-1]
    assert pa == pb
    assert 2 <= sum(p.apply for p in pa) <= 10
    assert len({p.target for p in pa}) > 3 and all(0.5 <= p.target.intensity <= 1.0 for p in pa)
    # the same content in another container gives the same draw
    assert a.sample_params(Image.fromarray(imgs[0])) == pa[0]
    assert a.sample_params(torch.from_numpy(imgs[0]).permute(2, 0, 1)) == pa[0]
    assert a.sample_params({"image": imgs[0], "label": 1}) == pa[0] == a.sample_params((imgs[0], 5))
    a.set_epoch(1)
    assert [a.sample_params(i) for i in imgs] != pa
    c = AffectAugment(("happiness", "surprise", "fear"), p=0.5, seed=4)
    assert [c.sample_params(i) for i in imgs] != pa


def test_va_mode_draws_in_annulus():
    aug = AffectAugment("va", p=1.0, intensity=(0.5, 1.0), label_preset="va")
    ps = [aug.sample_params(i) for i in _images(30)]
    r = [np.hypot(p.target.valence, p.target.arousal) for p in ps]
    assert all(p.apply for p in ps) and min(r) >= 0.5 - 1e-3 and max(r) <= 1.0 + 1e-3
    angles = np.arctan2([p.target.arousal for p in ps], [p.target.valence for p in ps])
    assert angles.min() < -1.5 and angles.max() > 1.5


@pytest.mark.parametrize("make", [
    lambda im: (im, 3),
    lambda im: [im, torch.tensor(3)],
    lambda im: {"image": im, "label": 3, "path": "x.jpg"},
    lambda im: (Image.fromarray(im), 3),
    lambda im: {"image": torch.from_numpy(im).permute(2, 0, 1).float() / 255, "label": torch.tensor(3),
                "keypoints": np.zeros((5, 2))},
])
def test_not_drawn_passes_through_every_structure(make):
    aug = AffectAugment(("happiness",), p=0.0)
    sample = make(_images(1)[0])
    out = aug(sample)
    assert out is sample
    assert aug.last_params.apply is False and aug.stats["passed"] == 1
    assert aug._synthesizer is None  # nothing was built


def test_replay_of_last_params_is_identical():
    aug = AffectAugment(("happiness",), p=0.0)
    img = _images(1)[0]
    out = aug((img, 2))
    assert aug.apply((img, 2), aug.last_params) == out


def test_disk_cache_no_face_entry_passes_through_unchanged(tmp_path):
    img = _images(1)[0]
    d = image_digest(img)
    p = tmp_path / d[:2] / f"{d}.json"
    p.parent.mkdir()
    p.write_text(json.dumps({"version": 1, "digest": d, "faces": []}))
    aug = AffectAugment(("happiness",), p=1.0, cache_dir=tmp_path)
    sample = {"image": img, "label": 4}
    assert aug(sample) is sample
    assert aug.stats["unfitted"] == 1 and aug.stats["disk_hits"] == 1 and aug._synthesizer is None
    assert aug(sample) is sample  # second time: from the in-memory LRU
    assert aug.stats["unfitted"] == 2 and aug.stats["cache_hits"] == 1


def test_label_rewriting():
    fer = AffectAugment(("happiness", "neutral"), label_preset="fer2013")
    assert fer.rewrite_label(0, Expression("happiness")) == 3
    assert fer.rewrite_label(0, Expression("neutral")) == 6
    t = fer.rewrite_label(torch.tensor(0, dtype=torch.int32), Expression("happiness"))
    assert t.dtype == torch.int32 and int(t) == 3
    assert fer.rewrite_label(np.int64(1), Expression("happiness")).dtype == np.int64
    an = AffectAugment(("contempt",), label_preset="affectnet")
    assert an.rewrite_label(0, Expression("contempt")) == 7
    va = AffectAugment("va", label_preset="va")
    labels = SynthLabels(TargetLabels("va", valence=0.4, arousal=-0.2), {}, (0.0, 0.0, 0.0))
    lab = va.rewrite_label(torch.zeros(2), VA(0.5, -0.25), labels)
    torch.testing.assert_close(lab, torch.tensor([0.4, -0.2]))  # the synthesis labels win
    lab = va.rewrite_label(None, VA(0.5, -0.25))
    assert lab.dtype == torch.float32 and lab.tolist() == [0.5, -0.25]
    none = AffectAugment(("happiness",), rewrite_labels=False)
    assert none.rewrite_label("orig", Expression("happiness")) == "orig"


@pytest.mark.parametrize("make", [
    lambda im: im,
    lambda im: Image.fromarray(im),
    lambda im: torch.from_numpy(im).permute(2, 0, 1),
    lambda im: {"image": im, "keypoints": np.zeros((3, 2))},
])
@pytest.mark.parametrize("p", [0.0, 1.0])
def test_image_without_label_is_refused_while_rewriting(make, p):
    """ImageFolder(transform=aug) hands over the image alone: refuse, whatever the draw, and say what to use."""
    aug = AffectAugment(("happiness",), p=p)
    with pytest.raises(MissingLabelError, match="AffectAugmentedImageFolder") as e:
        aug(make(_images(1)[0]))
    assert "rewrite_labels=False" in str(e.value) and "(image, label)" in str(e.value)
    assert aug._synthesizer is None


def test_image_only_allowed_when_rewriting_is_off():
    aug = AffectAugment(("happiness",), p=0.0, rewrite_labels=False)
    img = _images(1)[0]
    assert aug(img) is img and aug.preset is None


def test_call_forms_of_torchvision_and_albumentations():
    """v2.Compose unpacks (image, label) into two arguments; A.Compose calls with keywords and wants a dict."""
    aug = AffectAugment(("happiness",), p=0.0)
    img = _images(1)[0]
    out = aug(img, 4)
    assert isinstance(out, tuple) and out[0] is img and out[1] == 4
    kp = np.array([[1.0, 2.0, 0.5]])
    d = aug(image=img, label=4, keypoints=kp)
    assert set(d) == {"image", "label", "keypoints"} and d["image"] is img and d["keypoints"] is kp
    assert aug.sample_params({"image": img, "label": 4}) == aug.last_params
    with pytest.raises(TypeError, match="not both"):
        aug(img, label=4)
    with pytest.raises(TypeError, match="3 arguments"):
        aug(img, 4, 5)


def _batch(n: int = 3) -> torch.Tensor:
    return torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in _images(n)]).float() / 255


def test_batch_gets_a_draw_per_item_or_one_with_same_on_batch():
    batch = _batch(3)
    one = batch[:1].repeat(3, 1, 1, 1)  # three equal images: only the index tells them apart
    per_item = AffectAugment(("happiness", "surprise", "fear", "anger"), p=0.5, seed=0)
    params = per_item.sample_params((one, torch.tensor([6, 6, 6])))
    assert len(params) == 3 and len({(p.target, p.seed) for p in params}) == 3
    assert per_item.sample_params((batch, torch.zeros(3))) == per_item.sample_params((batch, torch.zeros(3)))
    same = AffectAugment(("happiness", "surprise", "fear", "anger"), p=0.5, seed=0, same_on_batch=True)
    params = same.sample_params((batch, torch.zeros(3)))
    assert len({(p.apply, p.target, p.seed) for p in params}) == 1
    assert [p.digest for p in params] == [image_digest(np.asarray(b.permute(1, 2, 0) * 255).round().astype(np.uint8))
                                          for b in batch]


def test_batch_not_drawn_keeps_every_item():
    aug = AffectAugment(("happiness",), p=0.0)
    batch, labels = _batch(3), torch.tensor([1, 2, 3])
    img, lab = aug((batch, labels))
    torch.testing.assert_close(img, batch)
    assert lab.tolist() == [1, 2, 3] and aug.stats["passed"] == 3 and len(aug.last_params) == 3
    with pytest.raises(MissingLabelError):
        aug(batch)


def test_pickle_drops_synthesizer_and_cache():
    aug = AffectAugment(("happiness",), p=0.3, seed=9, synthesizer_kwargs={"device": "cpu"})
    aug._synthesizer = "a built synthesizer"
    aug._lru["x"] = None
    aug.last_labels = SynthLabels(TargetLabels("aus", aus={"AU12": 0.5}), {"jawOpen": 0.3}, (1.0, 2.0, 3.0),
                                  landmarks=np.ones((468, 2)), frozen=("jawLeft",))
    assert pickle.loads(pickle.dumps(aug.last_labels)) == aug.last_labels  # labels travel back from workers
    aug.set_epoch(4)
    back = pickle.loads(pickle.dumps(aug))
    assert back._synthesizer is None and not back._lru and back.last_labels is None
    assert back.epoch == 4 and back.p == 0.3 and back.synthesizer_kwargs == {"device": "cpu"}
    img = _images(1)[0]
    aug._synthesizer = None
    assert back.sample_params(img) == aug.sample_params(img)
    assert "AffectAugment(targets=['happiness']" in repr(back)


class _Params(Dataset):
    def __init__(self, aug: AffectAugment) -> None:
        self.aug, self.imgs = aug, _images(16)

    def __len__(self) -> int:
        return len(self.imgs)

    def __getitem__(self, i: int):
        p: AugmentParams = self.aug.sample_params(self.imgs[i])
        return int(p.apply), p.seed % 1000003, p.target.intensity


def test_draws_do_not_depend_on_worker_count():
    aug = AffectAugment(("happiness", "fear"), p=0.5, seed=1)
    runs = []
    for workers in (0, 2):
        dl = DataLoader(_Params(aug), batch_size=3, num_workers=workers, shuffle=False)
        runs.append([tuple(map(float, x)) for b in dl for x in zip(*b)])
    assert runs[0] == runs[1] and len(runs[0]) == 16


@pytest.mark.parametrize("bad,needle", [(Image.new("RGB", (0, 0)), "zero size"),
                                        (np.full((8, 8, 3), np.nan, np.float32), "NaN"),
                                        (torch.full((3, 8, 8), float("inf")), "finite")])
def test_empty_and_non_finite_images_are_refused_up_front(bad, needle):
    aug = AffectAugment(("happiness",), p=1.0, seed=0)
    with pytest.raises(ValueError, match=needle):
        aug((bad, 3))
    assert aug.stats["failed"] == 0 and aug._synthesizer is None  # refused before the detector saw it


class _Epochs(Dataset):
    """Returns each item's draw epoch and seed, as a worker's copy of the transform sees them."""

    def __init__(self, aug: AffectAugment) -> None:
        self.aug, self.imgs = aug, _images(4)

    def __len__(self) -> int:
        return len(self.imgs)

    def __getitem__(self, i: int):
        self.aug((self.imgs[i], 0))
        return self.aug.last_params.epoch, self.aug.last_params.seed % 1000003


@pytest.mark.parametrize("context", ["fork", pytest.param("spawn", marks=pytest.mark.slow)])
def test_persistent_workers_see_a_new_epoch(context):
    """persistent_workers=True copies the dataset once; set_epoch in the main process must still reach it."""
    aug = AffectAugment(("happiness", "fear"), p=0.0, seed=5)
    dl = DataLoader(_Epochs(aug), batch_size=2, num_workers=2, persistent_workers=True, multiprocessing_context=context)
    epochs = []
    for epoch in range(2):
        aug.set_epoch(epoch)
        epochs.append([(int(e), int(s)) for b in dl for e, s in zip(*b)])
    assert [e for e, _ in epochs[0]] == [0] * 4 and [e for e, _ in epochs[1]] == [1] * 4
    assert {s for _, s in epochs[0]}.isdisjoint({s for _, s in epochs[1]})
    with pytest.raises(TypeError, match="epoch"):
        aug.set_epoch(1.5)
