"""The teacher's check of the blanks' tests: plausible wrong solutions, which must fail, and correct ones
written in other styles than the project's, which must pass (teachers only; left out of the student copy).

python teaching/grade.py --check-kit      # each one through `pytest test_all.py -k BLANK`, in a copy
pytest test_all.py -k wrong_solutions     # the same, faster, in one Python

SOLUTIONS maps each blank to (name, "wrong" or "right", source): the source is the whole function, as a
student would write it in the blank's file, using only the names that file already imports. Each wrong one is
a mistake an almost-right student makes; the docstrings of the blank's tests say which case catches it."""

import os
import textwrap

import torch
import torch.nn.functional as F
import torchaudio

from teaching.grade import transplant

HERE = os.path.dirname(os.path.abspath(__file__))


def log_mel_by_hand(clips, rate, n_fft, size):
    """The recipe of data.spectrogram's docstring, one torchaudio transform per step: power STFT (Hann window,
    hop n_fft / 4), 64 mel bands, natural log of power + 1e-10, each clip standardised over all its bands and
    frames, bilinear antialiased resize. `n_fft` is given by hand, not computed the way the code does. The
    spectrogram test's expected images (teaching/spectrogram_cases.pt) are made with it."""
    power = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=n_fft // 4, power=2.0)(clips)
    mel = torchaudio.transforms.MelScale(n_mels=64, sample_rate=rate, n_stft=n_fft // 2 + 1)(power)
    log = torch.log(mel + 1e-10)  # (B, 64, T)
    z = (log - log.mean(dim=(1, 2), keepdim=True)) / log.std(dim=(1, 2), keepdim=True)
    return F.interpolate(z[:, None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)


SPECTROGRAM_WRONG = {
    "no log (the standardisation hides it: it is gain-invariant too)": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = mel(x)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "log1p instead of the log": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = torch.log1p(mel(x))
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "standardised per time frame": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean(dim=1, keepdim=True)) / (s.std(dim=1, keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "standardised per mel band": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean(dim=2, keepdim=True)) / (s.std(dim=2, keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "standardised over the whole batch, not per clip": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean()) / (s.std() + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "a linear STFT instead of mel bands": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    stft = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=n_fft // 4, power=2.0)
    s = torch.log(stft(x) + 1e-10)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "amplitude (power 1) instead of power": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64, power=1.0
    )
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "n_fft fixed at 1024 whatever the sample rate": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=1024, hop_length=256, n_mels=64)
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "the hop fixed at 256 samples": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=256, n_mels=64)
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "128 mel bands": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=128)
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "mel bands up to 8 kHz, not to Nyquist": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64, f_max=min(8000.0, sample_rate / 2)
    )
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "standardised after the resize": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = torch.log(mel(x) + 1e-10)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    s = (s - s.mean(dim=(2, 3), keepdim=True)) / (s.std(dim=(2, 3), keepdim=True) + 1e-5)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "resized without antialiasing": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = torch.log(mel(x) + 1e-10)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear")
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "time and frequency swapped (transposed image)": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = torch.log(mel(x) + 1e-10).transpose(1, 2)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
    "frequency upside down (low frequencies at the top row)": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).float()
    if clips.dtype == torch.int16:
        x = x / 32768.0
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=64)
    s = torch.log(mel(x) + 1e-10).flip(1)
    s = (s - s.mean(dim=(1, 2), keepdim=True)) / (s.std(dim=(1, 2), keepdim=True) + 1e-5)
    s = F.interpolate(s[:, None], size=(size, size), mode="bilinear", antialias=True)
    return s.reshape(*clips.shape[:-1], 1, size, size)
""",
}

SPECTROGRAM_RIGHT = {
    "torch.stft and the mel filter bank by hand, in decibels, population std": """
def spectrogram(clips, sample_rate, size):
    x = clips.reshape(-1, clips.shape[-1]).to(torch.float32)
    if clips.dtype == torch.int16:
        x = x / 32768
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    window = torch.hann_window(n_fft)
    stft = torch.stft(x, n_fft, hop_length=n_fft // 4, window=window, center=True, return_complex=True)
    power = stft.abs() ** 2  # (B, n_fft / 2 + 1, T)
    banks = torchaudio.functional.melscale_fbanks(n_fft // 2 + 1, 0.0, sample_rate / 2, 64, sample_rate)
    mel = torch.einsum("bft,fm->bmt", power, banks)  # (B, 64, T)
    db = 10 * torch.log10(mel + 1e-10)  # a multiple of the natural log: the standardisation removes it
    mean = db.mean(dim=(1, 2), keepdim=True)
    std = db.std(dim=(1, 2), keepdim=True, unbiased=False)
    z = (db - mean) / (std + 1e-5)
    image = F.interpolate(z.unsqueeze(1), size=(size, size), mode="bilinear", antialias=True)
    return image.reshape(clips.shape[:-1] + (1, size, size))
""",
    "one clip at a time, torchaudio's AmplitudeToDB": """
def spectrogram(clips, sample_rate, size):
    flat = clips.reshape(-1, clips.shape[-1])
    n_fft = 2 ** round(math.log2(0.046 * sample_rate))
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=n_fft // 4, n_mels=N_MELS, power=2.0
    )
    to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)
    images = []
    for clip in flat:
        wave = clip.float() / 32768.0 if clip.dtype == torch.int16 else clip.float()
        s = to_db(mel(wave))  # (64, T)
        s = (s - s.mean()) / (s.std() + 1e-5)
        image = F.interpolate(s[None, None], size=(size, size), mode="bilinear", antialias=True)
        images.append(image[0])
    return torch.stack(images).reshape(*clips.shape[:-1], 1, size, size)
""",
}

POS_WEIGHT_WRONG = {
    "upside down: positives / negatives": """
def positive_weights(labels):
    positives = labels.sum(0).float()
    negatives = len(labels) - positives
    return torch.where(positives > 0, positives / negatives.clamp(min=1), torch.ones_like(positives))
""",
    "frames / positives instead of negatives / positives": """
def positive_weights(labels):
    positives = labels.sum(0).float()
    return torch.where(positives > 0, len(labels) / positives.clamp(min=1), torch.ones_like(positives))
""",
    "smoothed: negatives / (positives + 1)": """
def positive_weights(labels):
    positives = labels.sum(0).float()
    return (len(labels) - positives) / (positives + 1)
""",
    "integer division": """
def positive_weights(labels):
    positives = labels.sum(0)
    negatives = len(labels) - positives
    return torch.where(positives > 0, negatives // positives.clamp(min=1), 1).float()
""",
    "summed over the wrong axis (one weight per frame)": """
def positive_weights(labels):
    positives = labels.sum(1).float()
    negatives = labels.shape[1] - positives
    return torch.where(positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives))
""",
    "inf for a material never seen": """
def positive_weights(labels):
    positives = labels.sum(0).float()
    return (len(labels) - positives) / positives
""",
    "0 for a material never seen": """
def positive_weights(labels):
    positives = labels.sum(0).float()
    negatives = len(labels) - positives
    return torch.where(positives > 0, negatives / positives.clamp(min=1), torch.zeros_like(positives))
""",
    "weights rescaled to mean 1": """
def positive_weights(labels):
    positives = labels.sum(0).float()
    negatives = len(labels) - positives
    weight = torch.where(positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives))
    return weight / weight.mean()
""",
    "capped at 10 so that rare materials do not blow up the loss": """
def positive_weights(labels):
    positives = labels.sum(0).float()
    negatives = len(labels) - positives
    weight = torch.where(positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives))
    return weight.clamp(max=10)
""",
    "a Python list": """
def positive_weights(labels):
    weights = []
    for m in range(labels.shape[1]):
        positives = int(labels[:, m].sum())
        weights.append((len(labels) - positives) / positives if positives else 1.0)
    return weights
""",
}

POS_WEIGHT_RIGHT = {
    "float64 weights (the loss promotes them)": """
def positive_weights(labels):
    positives = labels.sum(0).double()
    negatives = len(labels) - positives
    return torch.where(positives > 0, negatives / positives.clamp(min=1), torch.ones_like(positives))
""",
    "a loop over the materials": """
def positive_weights(labels):
    weights = torch.ones(labels.shape[1])
    for m in range(labels.shape[1]):
        positives = labels[:, m].sum().item()
        if positives > 0:
            weights[m] = (len(labels) - positives) / positives
    return weights
""",
    "a ratio with inf and NaN replaced": """
def positive_weights(labels):
    positives = labels.float().sum(dim=0)
    negatives = (~labels).float().sum(dim=0)
    return torch.nan_to_num(negatives / positives, nan=1.0, posinf=1.0)
""",
}

FORWARD_WRONG = {
    "no normalisation (a dot product)": """
def forward(self, image, sound):
    cosine = (self.image_tower(image) * self.sound_tower(sound)).sum(1)
    return (cosine + 1) / 2
""",
    "the image embedding normalised, not the sound's": """
def forward(self, image, sound):
    image_embedding = F.normalize(self.image_tower(image), dim=1)
    sound_embedding = self.sound_tower(sound)
    return ((image_embedding * sound_embedding).sum(1) + 1) / 2
""",
    "the sound embedding normalised, not the image's": """
def forward(self, image, sound):
    image_embedding = self.image_tower(image)
    sound_embedding = F.normalize(self.sound_tower(sound), dim=1)
    return ((image_embedding * sound_embedding).sum(1) + 1) / 2
""",
    "normalised over the batch (dim 0)": """
def forward(self, image, sound):
    image_embedding = F.normalize(self.image_tower(image), dim=0)
    sound_embedding = F.normalize(self.sound_tower(sound), dim=0)
    return ((image_embedding * sound_embedding).sum(1) + 1) / 2
""",
    "a sigmoid of the cosine": """
def forward(self, image, sound):
    image_embedding = F.normalize(self.image_tower(image), dim=1)
    sound_embedding = F.normalize(self.sound_tower(sound), dim=1)
    return torch.sigmoid((image_embedding * sound_embedding).sum(1))
""",
    "the cosine itself, not scaled to [0, 1]": """
def forward(self, image, sound):
    return F.cosine_similarity(self.image_tower(image), self.sound_tower(sound), dim=1)
""",
    "a (B, 1) output": """
def forward(self, image, sound):
    image_embedding = F.normalize(self.image_tower(image), dim=1)
    sound_embedding = F.normalize(self.sound_tower(sound), dim=1)
    return ((image_embedding * sound_embedding).sum(1, keepdim=True) + 1) / 2
""",
    "squeezed: a 0-d output for a batch of one": """
def forward(self, image, sound):
    image_embedding = F.normalize(self.image_tower(image), dim=1)
    sound_embedding = F.normalize(self.sound_tower(sound), dim=1)
    return ((image_embedding @ sound_embedding.T).diagonal()[:, None].squeeze() + 1) / 2
""",
    "every image against every sound: a (B, B) output": """
def forward(self, image, sound):
    image_embedding = F.normalize(self.image_tower(image), dim=1)
    sound_embedding = F.normalize(self.sound_tower(sound), dim=1)
    return (image_embedding @ sound_embedding.T + 1) / 2
""",
    "the sound tower detached": """
def forward(self, image, sound):
    image_embedding = F.normalize(self.image_tower(image), dim=1)
    sound_embedding = F.normalize(self.sound_tower(sound).detach(), dim=1)
    return ((image_embedding * sound_embedding).sum(1) + 1) / 2
""",
    "built with float() and torch.tensor (autograd lost)": """
def forward(self, image, sound):
    image_embedding = F.normalize(self.image_tower(image), dim=1)
    sound_embedding = F.normalize(self.sound_tower(sound), dim=1)
    scores = [(float((i * s).sum()) + 1) / 2 for i, s in zip(image_embedding, sound_embedding)]
    return torch.tensor(scores)
""",
    "the image tower under no_grad": """
def forward(self, image, sound):
    with torch.no_grad():
        image_embedding = F.normalize(self.image_tower(image), dim=1)
    sound_embedding = F.normalize(self.sound_tower(sound), dim=1)
    return ((image_embedding * sound_embedding).sum(1) + 1) / 2
""",
}

FORWARD_RIGHT = {
    "F.cosine_similarity": """
def forward(self, image, sound):
    cosine = F.cosine_similarity(self.image_tower(image), self.sound_tower(sound), dim=1)
    return 0.5 * cosine + 0.5
""",
    "norms by hand, einsum, clamped": """
def forward(self, image, sound):
    a = self.image_tower(image)
    b = self.sound_tower(sound)
    a = a / a.norm(dim=1, keepdim=True).clamp(min=1e-12)
    b = b / b.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cosine = torch.einsum("bd,bd->b", a, b)
    return ((1 + cosine) / 2).clamp(0, 1)
""",
}

NEGATIVE_WRONG = {
    "one negative per frame, repeated for its ten clips": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]
    absent = ~ds.image_labels[videos][:, clip_material]  # (V, M)
    one = torch.multinomial(absent.float(), 1, generator=generator).flatten()  # (V,)
    negative = one.repeat_interleave(n)  # the same clip for the frame's ten positives
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))])
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([clip_index, clip_index[negative]]),
        label,
    )
""",
    "the generator ignored (torch's global one used)": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]
    absent = ~ds.image_labels[videos][:, clip_material]
    negative = torch.multinomial(absent.float(), n, replacement=True).flatten()
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))])
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([clip_index, clip_index[negative]]),
        label,
    )
""",
    "no draw: always the first absent clip": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]
    absent = ~ds.image_labels[videos][:, clip_material]
    first = absent.int().argmax(1)  # (V,)
    negative = first.repeat_interleave(n)
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))])
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([clip_index, clip_index[negative]]),
        label,
    )
""",
    "bool labels": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]
    absent = ~ds.image_labels[videos][:, clip_material]
    negative = torch.multinomial(absent.float(), n, replacement=True, generator=generator).flatten()
    label = torch.ones(2 * len(clip_video), dtype=torch.bool)
    label[len(clip_video) :] = False
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([clip_index, clip_index[negative]]),
        label,
    )
""",
    "integer labels": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]
    absent = ~ds.image_labels[videos][:, clip_material]
    negative = torch.multinomial(absent.float(), n, replacement=True, generator=generator).flatten()
    label = torch.ones(2 * len(clip_video), dtype=torch.long)
    label[len(clip_video) :] = 0
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([clip_index, clip_index[negative]]),
        label,
    )
""",
    "negatives from every split": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    everything = torch.arange(len(ds.video_ids))
    all_video = everything.repeat_interleave(n)
    all_index = torch.arange(n).repeat(len(everything))
    absent = ~ds.image_labels[videos][:, ds.clip_materials[all_video, all_index]]  # (V, all clips)
    negative = torch.multinomial(absent.float(), n, replacement=True, generator=generator).flatten()
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))])
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, all_video[negative]]),
        torch.cat([clip_index, all_index[negative]]),
        label,
    )
""",
    "any other video's clip, whatever its material": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    other = clip_video[None, :] != videos[:, None]  # (V, M)
    negative = torch.multinomial(other.float(), n, replacement=True, generator=generator).flatten()
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))])
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([clip_index, clip_index[negative]]),
        label,
    )
""",
    "a material other than the positive clip's (but maybe in the frame)": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]  # (M,)
    other = clip_material[:, None] != clip_material[None, :]  # (M, M)
    negative = torch.multinomial(other.float(), 1, generator=generator).flatten()
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))])
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([clip_index, clip_index[negative]]),
        label,
    )
""",
    "one positive per video (its first clip)": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]
    absent = ~ds.image_labels[videos][:, clip_material]
    negative = torch.multinomial(absent.float(), n, replacement=True, generator=generator).flatten()
    positive_clip = torch.zeros_like(clip_index)  # always clip 0
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))])
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([positive_clip, clip_index[negative]]),
        label,
    )
""",
    "each negative with a frame drawn anew, not its positive's": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]
    frame = videos[torch.randint(len(videos), (len(clip_video),), generator=generator)]
    absent = ~ds.image_labels[frame][:, clip_material]  # (M, M)
    negative = torch.multinomial(absent.float(), 1, generator=generator).flatten()
    label = torch.cat([torch.ones(len(clip_video)), torch.zeros(len(clip_video))])
    return (
        torch.cat([clip_video, frame]),
        torch.cat([clip_video, clip_video[negative]]),
        torch.cat([clip_index, clip_index[negative]]),
        label,
    )
""",
}

NEGATIVE_RIGHT = {
    "the split found with ds.split, loops, pairs interleaved": """
def make_examples(ds, videos, generator):
    split = ds.split[videos[0]]
    pool = [
        (v, c)
        for v in torch.nonzero(ds.split == split).flatten().tolist()
        for c in range(data.CLIPS_PER_VIDEO)
    ]
    frame_video, sound_video, sound_clip, label = [], [], [], []
    for v in videos.tolist():
        shown = ds.image_labels[v]
        candidates = [(u, c) for u, c in pool if not shown[ds.clip_materials[u, c]]]
        for c in range(data.CLIPS_PER_VIDEO):
            pick = torch.randint(len(candidates), (1,), generator=generator).item()
            u, d = candidates[pick]
            frame_video += [v, v]
            sound_video += [v, u]
            sound_clip += [c, d]
            label += [1.0, 0.0]
    return torch.tensor(frame_video), torch.tensor(sound_video), torch.tensor(sound_clip), torch.tensor(label)
""",
    "negatives first, drawn per material with torch.randint": """
def make_examples(ds, videos, generator):
    n = data.CLIPS_PER_VIDEO
    clip_video = videos.repeat_interleave(n)
    clip_index = torch.arange(n).repeat(len(videos))
    clip_material = ds.clip_materials[clip_video, clip_index]
    negatives = []
    for v in clip_video.tolist():
        candidates = torch.nonzero(~ds.image_labels[v][clip_material]).flatten()
        negatives.append(candidates[torch.randint(len(candidates), (1,), generator=generator)])
    negative = torch.cat(negatives)
    label = torch.cat([torch.zeros(len(clip_video)), torch.ones(len(clip_video))])
    return (
        torch.cat([clip_video, clip_video]),
        torch.cat([clip_video[negative], clip_video]),
        torch.cat([clip_index[negative], clip_index]),
        label,
    )
""",
}

PRECISION_WRONG = {
    "ties broken by index (a stable sort on the similarity alone)": """
def precision_at_k(similarity, relevant, k):
    order = torch.argsort(similarity, dim=1, descending=True, stable=True)
    hits = relevant.gather(1, order)[:, :k].float()
    return hits.cumsum(1) / torch.arange(1, k + 1)
""",
    "sorted ascending, then flipped (ties by reversed index)": """
def precision_at_k(similarity, relevant, k):
    order = torch.argsort(similarity, dim=1, stable=True).flip(1)
    hits = relevant.gather(1, order)[:, :k].float()
    return hits.cumsum(1) / torch.arange(1, k + 1)
""",
    "ties in the model's favour (relevant items first)": """
def precision_at_k(similarity, relevant, k):
    order = torch.argsort((~relevant).int(), dim=1, stable=True)
    by_similarity = torch.argsort(similarity.gather(1, order), dim=1, descending=True, stable=True)
    hits = relevant.gather(1, order.gather(1, by_similarity))[:, :k].float()
    return hits.cumsum(1) / torch.arange(1, k + 1)
""",
    "the least similar first": """
def precision_at_k(similarity, relevant, k):
    order = torch.argsort(relevant.int(), dim=1, stable=True)
    by_similarity = torch.argsort(similarity.gather(1, order), dim=1, stable=True)  # ascending
    hits = relevant.gather(1, order.gather(1, by_similarity))[:, :k].float()
    return hits.cumsum(1) / torch.arange(1, k + 1)
""",
    "off by one: divided by K + 1": """
def precision_at_k(similarity, relevant, k):
    hits = relevant.gather(1, rank(similarity, relevant))[:, :k].float()
    return hits.cumsum(1) / torch.arange(2, k + 2)
""",
    "off by one: the top K - 1 counted": """
def precision_at_k(similarity, relevant, k):
    hits = relevant.gather(1, rank(similarity, relevant)).float()
    counts = torch.cat([torch.zeros(len(hits), 1), hits.cumsum(1)], dim=1)[:, :k]
    return counts / torch.arange(1, k + 1)
""",
    "only precision@k, not K = 1..k": """
def precision_at_k(similarity, relevant, k):
    hits = relevant.gather(1, rank(similarity, relevant))[:, :k].float()
    return hits.mean(1)
""",
    "every K divided by k": """
def precision_at_k(similarity, relevant, k):
    hits = relevant.gather(1, rank(similarity, relevant))[:, :k].float()
    return hits.cumsum(1) / k
""",
    "integer division": """
def precision_at_k(similarity, relevant, k):
    hits = relevant.gather(1, rank(similarity, relevant))[:, :k].long()
    return hits.cumsum(1) // torch.arange(1, k + 1)
""",
}

PRECISION_RIGHT = {
    "a loop over the queries, Python's sort": """
def precision_at_k(similarity, relevant, k):
    out = torch.zeros(similarity.shape[0], k)
    for q in range(similarity.shape[0]):
        s, r = similarity[q].tolist(), relevant[q].tolist()
        order = sorted(range(len(s)), key=lambda i: (-s[i], r[i]))
        found = 0
        for position in range(k):
            found += r[order[position]]
            out[q, position] = found / (position + 1)
    return out
""",
    "a rank counted without sorting": """
def precision_at_k(similarity, relevant, k):
    above = (similarity[:, None, :] > similarity[:, :, None]).sum(2)  # (Q, N) items strictly more similar
    tied = similarity[:, None, :] == similarity[:, :, None]  # (Q, N, N): [q, i, j] items i and j tied
    before = torch.arange(similarity.shape[1])[None, :] < torch.arange(similarity.shape[1])[:, None]  # j < i
    tied_ahead = tied & (~relevant[:, None, :] | (relevant[:, None, :] & before))  # placed before item i
    ranks = above + tied_ahead.sum(2)  # 0-based ranks of the relevant items, ties pessimistic
    ks = torch.arange(1, k + 1)
    found = (relevant[:, :, None] & (ranks[:, :, None] < ks)).sum(1).float()  # (Q, k)
    return found / ks
""",
}

AP_WRONG = {
    "interpolated (VOC-style) AP": """
def average_precision(similarity, relevant):
    hits = relevant.gather(1, rank(similarity, relevant)).float()
    precision = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1)
    interpolated = precision.flip(1).cummax(1).values.flip(1)  # the best precision at this rank or later
    return (interpolated * hits).sum(1) / hits.sum(1)
""",
    "divided by the library size": """
def average_precision(similarity, relevant):
    hits = relevant.gather(1, rank(similarity, relevant)).float()
    precision = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1)
    return (precision * hits).sum(1) / hits.shape[1]
""",
    "the mean of precision over every rank": """
def average_precision(similarity, relevant):
    hits = relevant.gather(1, rank(similarity, relevant)).float()
    precision = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1)
    return torch.where(hits.sum(1) > 0, precision.mean(1), float("nan"))
""",
    "0 for a query with nothing relevant": """
def average_precision(similarity, relevant):
    hits = relevant.gather(1, rank(similarity, relevant)).float()
    precision = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1)
    return (precision * hits).sum(1) / hits.sum(1).clamp(min=1)
""",
    "ties broken by index": """
def average_precision(similarity, relevant):
    order = torch.argsort(similarity, dim=1, descending=True, stable=True)
    hits = relevant.gather(1, order).float()
    precision = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1)
    return (precision * hits).sum(1) / hits.sum(1)
""",
    "scikit-learn per query (ties as one threshold)": """
def average_precision(similarity, relevant):
    from sklearn.metrics import average_precision_score

    out = []
    for s, r in zip(similarity, relevant):
        out.append(average_precision_score(r.numpy(), s.numpy()) if r.any() else float("nan"))
    return torch.tensor(out)
""",
    "11-point interpolated AP": """
def average_precision(similarity, relevant):
    hits = relevant.gather(1, rank(similarity, relevant)).float()
    precision = hits.cumsum(1) / torch.arange(1, hits.shape[1] + 1)
    recall = hits.cumsum(1) / hits.sum(1, keepdim=True)
    points = []
    for level in torch.linspace(0, 1, 11):
        reached = recall >= level
        points.append(torch.where(reached, precision, torch.zeros_like(precision)).max(1).values)
    return torch.where(hits.sum(1) > 0, torch.stack(points, 1).mean(1), float("nan"))
""",
}

AP_RIGHT = {
    "a loop over the queries, Python's sort": """
def average_precision(similarity, relevant):
    out = []
    for s, r in zip(similarity.tolist(), relevant.tolist()):
        order = sorted(range(len(s)), key=lambda i: (-s[i], r[i]))
        found, total = 0, 0.0
        for position, i in enumerate(order, start=1):
            if r[i]:
                found += 1
                total += found / position
        out.append(total / found if found else float("nan"))
    return torch.tensor(out)
""",
    "from precision_at_k at every rank": """
def average_precision(similarity, relevant):
    n = similarity.shape[1]
    precision = precision_at_k(similarity, relevant, n)  # (Q, N)
    hits = relevant.gather(1, rank(similarity, relevant)).float()
    return (precision * hits).sum(1) / hits.sum(1)
""",
}

SOLUTIONS = {
    "spectrogram": [("wrong", name, source) for name, source in SPECTROGRAM_WRONG.items()]
    + [("right", name, source) for name, source in SPECTROGRAM_RIGHT.items()],
    "pos_weight": [("wrong", name, source) for name, source in POS_WEIGHT_WRONG.items()]
    + [("right", name, source) for name, source in POS_WEIGHT_RIGHT.items()],
    "tt_agg_forward": [("wrong", name, source) for name, source in FORWARD_WRONG.items()]
    + [("right", name, source) for name, source in FORWARD_RIGHT.items()],
    "negative_sampling": [("wrong", name, source) for name, source in NEGATIVE_WRONG.items()]
    + [("right", name, source) for name, source in NEGATIVE_RIGHT.items()],
    "precision_at_k": [("wrong", name, source) for name, source in PRECISION_WRONG.items()]
    + [("right", name, source) for name, source in PRECISION_RIGHT.items()],
    "average_precision": [("wrong", name, source) for name, source in AP_WRONG.items()]
    + [("right", name, source) for name, source in AP_RIGHT.items()],
}


# --- Whole submissions for the grader's tests (test_all.py's class test): a cheat in every blank, each of
# which must get 0 and leave nothing outside its grading folder, and correct code in other styles, which must
# get every point. Each cheat is one the grader once fell for.

TOKEN = "matsound-cheat-was-here"
CHEATS = {  # a submission that cheats in every blank: (file, function, source, top-level code added)
    "average_precision": (  # (a) a fake pytest summary printed, zeros returned
        "metrics.py",
        "average_precision",
        """
        def average_precision(similarity, relevant):
            print("=" * 30 + " 1000000 passed in 0.01s " + "=" * 30)
            return torch.zeros(len(similarity))
        """,
        "",
    ),
    "precision_at_k": (  # (b) a top-level line that makes every pytest test a no-op
        "metrics.py",
        "precision_at_k",
        """
        def precision_at_k(similarity, relevant, k):
            return torch.zeros(len(similarity), k)
        """,
        "\nimport _pytest.python\n\n_pytest.python.Function.runtest = lambda self: None\n",
    ),
    "pos_weight": (  # (c) a correct solution executed from the teaching files, wherever they are found
        "visual_only.py",
        "positive_weights",
        """
        def positive_weights(labels):
            import os
            here = os.path.dirname(os.path.abspath(__file__))
            for folder in [os.getcwd(), here, os.path.dirname(here), f"/proc/{os.getppid()}/cwd"]:
                path = os.path.join(folder, "teaching", "wrong_solutions.py")
                if os.path.isfile(path):
                    found = {"__file__": path}
                    exec(open(path).read(), found)
                    right = [s for e, _, s in found["SOLUTIONS"]["pos_weight"] if e == "right"][-1]
                    solution = {"torch": __import__("torch")}
                    exec(right, solution)
                    return solution["positive_weights"](labels)
            raise FileNotFoundError("no solution to copy")
        """,
        "",
    ),
    "tt_agg_forward": (  # (d) a wrong answer that skips the test that would catch it
        "tt_agg.py",
        "TwoTower.forward",
        """
        def forward(self, image, sound):
            __import__("pytest").skip("nothing to see")
            return torch.ones(len(image))
        """,
        "",
    ),
    "negative_sampling": (  # (e) files written outside its folder, found through its parent; the environment
        "tt_agg.py",
        "make_examples",
        f"""
        def make_examples(ds, videos, generator):
            import os
            import tempfile
            places = [f"/proc/{{os.getppid()}}/cwd", os.path.expanduser("~"), tempfile.gettempdir()]
            places += [os.environ.get("PWD", "/nowhere"), os.environ.get("OLDPWD", "/nowhere")]
            for folder in places:
                try:
                    open(os.path.join(folder, "{TOKEN}"), "w").write("x")
                except OSError:
                    pass
            raise AssertionError("environment: " + " ".join(sorted(os.environ)))
        """,
        "",
    ),
    "spectrogram": (  # (e) a row of the key put into its failure reason (its path found somehow)
        "data.py",
        "spectrogram",
        f"""
        def spectrogram(clips, sample_rate, size):
            rows = [line for line in open({os.path.join(HERE, "KEY.md")!r}) if "| 02-" in line]
            raise AssertionError("the key says " + rows[0])
        """,
        "",
    ),
}
FORWARD_STYLED = """
def forward(self, image, sound):
    cosine = (unit(self.image_tower(image)) * unit(self.sound_tower(sound))).sum(dim=-1)
    return 0.5 + 0.5 * cosine
"""
STYLES = {  # a correct submission in other styles than the project's: {file: edit}
    "data.py": lambda text: (
        text.replace(
            '"""\n\nimport argparse', '"""\n\nfrom __future__ import annotations\n\nimport argparse', 1
        ).replace("torch.log(mel(chunk) + 1e-10)", "torch.log(mel(chunk) + LOG_FLOOR)")
        + "\n\nLOG_FLOOR: float = 1e-10  # annotated, defined below the function that uses it\n"
    ),
    "visual_only.py": lambda text: (
        text  # the blank left as it was, a definition below it: the last counts
        + textwrap.dedent('''

        def positive_weights(labels):
            """Mine: a Counter, a helper and an import at the bottom of the file."""
            counts = Counter()
            for row in labels.tolist():
                counts.update(m for m, shown in enumerate(row) if shown)
            return torch.tensor([ratio(len(labels), counts[m]) for m in range(len(labels[0]))])


        def ratio(frames, positives):
            return (frames - positives) / positives if positives else 1.0


        from collections import Counter  # noqa: E402
        ''')
    ),
    "tt_agg.py": lambda text: (
        transplant(text, FORWARD_STYLED, "TwoTower.forward")  # a helper and an import below the class
        + "\n\ndef unit(x):\n    return functional.normalize(x, dim=1)\n\n\n"
        + "import torch.nn.functional as functional\n"
    ),
}
