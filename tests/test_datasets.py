"""Loaders (every skip reason, clip vs full track, resampling/downmix), clear errors, the
pre-encoded cache (reuse and rebuild), prepare_corpus for an audio folder, and the text encoder."""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from eisbach_lib import datasets as D
from eisbach_lib.cache import load_cache
from eisbach_lib.codec import MelCodec
from helpers import smoke_at

SR, SECONDS = 22050, 6.0
SRC_SR = 48000


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tone(freq: float, seconds: float, sr: int = SRC_SR, stereo: bool = True, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([y, 0.5 * y], axis=1) if stereo else y


def dominant_freq(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / sr)[spec.argmax()])


MC_COLUMNS = ["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id",
              "is_balanced_subset", "is_audioset_eval"]


@pytest.fixture()
def musiccaps(tmp_path):
    """A MusicCaps CSV and audio folder with two good clips and one of every bad case."""
    audio = tmp_path / "audio"
    audio.mkdir()
    sf.write(audio / "good_clip.wav", tone(440.0, 10.0), SRC_SR)                       # the 10 s clip itself
    full = np.concatenate([tone(300.0, 12.0), tone(1000.0, 10.0), tone(300.0, 8.0)])    # 30 s full track
    sf.write(audio / "good_full.flac", full, SRC_SR)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    sf.write(audio / "empty.wav", np.zeros((0, 2), dtype=np.float32), SRC_SR)
    sf.write(audio / "silent.wav", np.zeros((10 * SRC_SR, 2), dtype=np.float32), SRC_SR)
    sf.write(audio / "short.wav", tone(440.0, 2.0), SRC_SR)
    rows = [("good_clip", 30, 40, True), ("good_full", 12, 22, False), ("missing", 0, 10, False),
            ("corrupt", 0, 10, False), ("empty", 0, 10, False), ("silent", 0, 10, False), ("short", 0, 10, False),
            ("good_clip", 30, 40, True)]
    df = pd.DataFrame([{"ytid": y, "start_s": s, "end_s": e, "audioset_positive_labels": "/m/04rlf",
                        "aspect_list": "['calm']", "caption": f"caption of {y}", "author_id": 1,
                        "is_balanced_subset": False, "is_audioset_eval": ev} for y, s, e, ev in rows])[MC_COLUMNS]
    df.to_csv(tmp_path / "musiccaps.csv", index=False)
    return tmp_path / "musiccaps.csv", audio


def test_musiccaps_loads_good_clips_and_skips_every_bad_case(musiccaps, capsys):
    csv, audio = musiccaps
    ds, skipped = D.load_musiccaps(csv, audio, SR, SECONDS)
    assert list(ds.manifest["id"]) == ["good_clip", "good_full"]
    assert dict(zip(skipped["ytid"], skipped["reason"])) == {
        "missing": "missing", "corrupt": "unreadable", "empty": "empty", "silent": "silent", "short": "too short",
        "good_clip": "duplicate"}
    assert list(skipped.columns) == ["ytid", "path", "reason"]
    assert list(ds.manifest["split"]) == ["reference", "finetune"]
    assert {"id", "caption", "split", "path", "seconds"} <= set(ds.manifest.columns)
    out = capsys.readouterr().out
    assert "2 clips loaded" in out and "6 skipped" in out
    a, b = ds[0], ds[1]
    for item in (a, b):
        assert item["audio"].dtype == np.float32 and item["audio"].shape == (int(SECONDS * SR),)
        assert item["seconds"] == SECONDS
    assert abs(dominant_freq(a["audio"], SR) - 440.0) < 5.0
    assert abs(dominant_freq(b["audio"], SR) - 1000.0) < 5.0  # cut at start_s = 12 s of the full track
    assert a["caption"] == "caption of good_clip"


def test_musiccaps_short_clip_is_padded_and_its_real_length_kept(tmp_path):
    audio = tmp_path / "a"
    audio.mkdir()
    sf.write(audio / "x.wav", tone(220.0, 4.0, stereo=False), SRC_SR)
    pd.DataFrame([{"ytid": "x", "start_s": 0, "end_s": 10, "caption": "c"}]).to_csv(tmp_path / "m.csv", index=False)
    ds, skipped = D.load_musiccaps(tmp_path / "m.csv", audio, SR, SECONDS, progress=False)
    assert len(skipped) == 0 and ds.manifest["seconds"][0] == pytest.approx(4.0, abs=1e-3)
    y = ds[0]["audio"]
    assert np.abs(y[int(4.1 * SR):]).max() == 0 and np.abs(y[: int(3.9 * SR)]).max() > 0.1


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MP3")
def test_musiccaps_reads_mp3(tmp_path):
    sf.write(tmp_path / "m.mp3", tone(440.0, 10.0, sr=44100), 44100, format="MP3")
    pd.DataFrame([{"ytid": "m", "start_s": 0, "end_s": 10, "caption": "c"}]).to_csv(tmp_path / "m.csv", index=False)
    ds, skipped = D.load_musiccaps(tmp_path / "m.csv", tmp_path, SR, SECONDS, progress=False)
    assert len(skipped) == 0 and abs(dominant_freq(ds[0]["audio"], SR) - 440.0) < 5.0


def test_missing_csv_and_missing_columns_raise_clear_errors(tmp_path):
    with pytest.raises(D.DataError, match="nope.csv"):
        D.load_musiccaps(tmp_path / "nope.csv", tmp_path, SR, SECONDS)
    pd.DataFrame([{"ytid": "a", "caption": "c"}]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(D.DataError, match=r"bad\.csv.*start_s, end_s"):
        D.load_musiccaps(tmp_path / "bad.csv", tmp_path, SR, SECONDS)
    with pytest.raises(D.DataError, match="metadata.csv"):
        D.load_audio_folder(tmp_path, SR, SECONDS)


def _folder(tmp_path):
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a.wav", tone(330.0, 8.0), SRC_SR)
    sf.write(folder / "sub" / "b.flac", tone(550.0, 6.0, sr=44100, stereo=False), 44100)
    sf.write(folder / "quiet.wav", np.zeros(SRC_SR * 8, dtype=np.float32), SRC_SR)
    sf.write(folder / "tiny.wav", tone(330.0, 1.0), SRC_SR)
    pd.DataFrame({"file_name": ["a.wav", "sub/b.flac", "quiet.wav", "tiny.wav", "gone.wav"],
                  "caption": ["a calm tone", "a higher tone", "nothing", "too little", "absent"]}).to_csv(
        folder / "metadata.csv", index=False)
    return folder


def test_audio_folder(tmp_path):
    ds, skipped = D.load_audio_folder(_folder(tmp_path), SR, SECONDS, progress=False)
    assert list(ds.manifest["id"]) == ["a", "sub__b"]
    assert dict(zip(skipped["file_name"], skipped["reason"])) == {"quiet.wav": "silent", "tiny.wav": "too short",
                                                                  "gone.wav": "missing"}
    assert set(ds.manifest["split"]) <= {"finetune", "reference"}
    assert abs(dominant_freq(ds[1]["audio"], SR) - 550.0) < 5.0


class CountingCodec(MelCodec):
    def __init__(self):
        super().__init__(sample_rate=SR)
        self.calls = 0

    def encode(self, audio):
        self.calls += 1
        return super().encode(audio)


class FakeText:
    """Deterministic stand-in for TextEncoder (caption length → mask), no model load."""

    dim, max_tokens, cache_key = 8, 6, "fake-text"

    def encode(self, captions):
        mask = torch.zeros(len(captions), self.max_tokens, dtype=torch.bool)
        for i, c in enumerate(captions):
            mask[i, : min(self.max_tokens, len(c.split()))] = True
        return torch.randn(len(captions), self.max_tokens, self.dim, generator=torch.Generator().manual_seed(0)), mask


def _written_corpus(tmp_path):
    ds, _ = D.load_audio_folder(_folder(tmp_path), SR, SECONDS, progress=False)
    return D.write_dataset(ds, tmp_path / "corpus", progress=False), tmp_path / "corpus"


def test_encode_corpus_builds_then_reuses_and_rebuilds_on_meta_change(tmp_path, capsys):
    manifest, root = _written_corpus(tmp_path)
    codec, text = CountingCodec(), FakeText()
    meta = {"codec": codec.cache_key, "n": 1}
    folder = D.encode_corpus(manifest, root, codec, text, tmp_path / "cache", meta, batch_size=1, progress=False,
                             seconds=SECONDS)
    assert codec.calls == 2
    pe = load_cache(folder)
    assert pe.latents.shape == (2, 64, codec.frames(SECONDS)) and pe.tokens.shape == (2, 6, 8)
    assert list(pe.manifest["id"]) == ["a", "sub__b"]
    assert pe.frame_mask.all()  # both clips fill the 6 s
    again = D.encode_corpus(manifest, root, codec, text, tmp_path / "cache", meta, progress=True, seconds=SECONDS)
    assert again == folder and codec.calls == 2 and "reusing" in capsys.readouterr().out
    other = D.encode_corpus(manifest, root, codec, text, tmp_path / "cache", {**meta, "n": 2}, progress=False,
                            seconds=SECONDS)
    assert other != folder and codec.calls == 3


def test_encode_corpus_masks_padding(tmp_path):
    manifest, root = _written_corpus(tmp_path)
    manifest = manifest.assign(seconds=[SECONDS, 3.0])
    codec = CountingCodec()
    pe = load_cache(D.encode_corpus(manifest, root, codec, FakeText(), tmp_path / "cache", {"m": 1}, progress=False,
                                    seconds=SECONDS))
    assert pe.frame_mask[0].all()
    assert pe.frame_mask[1].sum() == codec.frames(3.0) and not pe.frame_mask[1, codec.frames(3.0):].any()
    assert pe.seconds.tolist() == [SECONDS, 3.0]


def test_prepare_corpus_for_an_audio_folder(tmp_path):
    folder = _folder(tmp_path)
    cfg = smoke_at(tmp_path / "runs", {
        "corpus": {"source": "folder", "audio_dir": str(folder), "seconds": SECONDS, "sample_rate": SR},
        "codec.griffin_lim_iters": 32, "text.max_tokens": 6})
    codec = CountingCodec()
    folder_out = D.prepare_corpus(cfg, text_encoder=FakeText(), codec=codec, progress=False)
    pe = load_cache(folder_out)
    assert len(pe) == 2 and set(pe.manifest["split"]) <= {"finetune", "reference"}
    assert (tmp_path / "runs" / "corpus" / "audio" / "a.wav").exists()
    assert set(pd.read_csv(tmp_path / "runs" / "corpus" / "skipped.csv")["reason"]) == {"silent", "too short", "missing"}
    calls = codec.calls
    assert D.prepare_corpus(cfg, text_encoder=FakeText(), codec=codec, progress=False) == folder_out
    assert codec.calls == calls


def test_text_encoder_pads_to_max_tokens():
    from eisbach_lib.text import TextEncoder

    enc = TextEncoder(max_tokens=16)
    tokens, mask = enc.encode(["a cello and a harp, 72 BPM", "word " * 14])  # [CLS] + 14 + [SEP] = 16: fits exactly
    assert tokens.shape == (2, 16, TextEncoder.dim) and tokens.dtype == torch.float32
    assert mask.dtype == torch.bool and mask[1].all() and 3 < int(mask[0].sum()) < 16
    assert torch.all(tokens[0][~mask[0]] == 0)
    alone, _ = enc.encode(["a cello and a harp, 72 BPM"])
    torch.testing.assert_close(alone[0], tokens[0], atol=1e-4, rtol=1e-4)
