"""A synthetic Twitch world: channels, games and Helix-shaped clip objects from a seed.

Used by demo mode, the benchmarks and the tests. Titles draw words from a Zipf-distributed
vocabulary (a few words are in most titles, most words are rare), view counts are heavy-tailed
with many ties, and creation dates spread over a few years.
"""

from __future__ import annotations

import bisect
import itertools
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

COMMON_WORDS = [
    "pog",
    "clutch",
    "insane",
    "lul",
    "omg",
    "wtf",
    "gg",
    "ez",
    "no",
    "way",
    "the",
    "best",
    "play",
    "ever",
    "funny",
    "fail",
    "win",
    "chat",
    "stream",
    "boss",
    "kill",
    "rage",
    "moment",
    "first",
    "try",
    "world",
    "record",
    "speedrun",
    "poggers",
    "clip",
    "that",
    "was",
    "close",
    "ace",
    "headshot",
    "one",
    "tap",
    "tilted",
    "hype",
    "lets",
    "go",
    "bruh",
    "sadge",
    "monkas",
    "pepega",
    "kappa",
    "catjam",
    "ggwp",
    "jebaited",
    "dance",
    "scream",
    "jumpscare",
    "raid",
]
LANGUAGES = ["en"] * 12 + ["es", "es", "de", "ja", "pt", "fr", "ko", "ru", "other"]
CLIP_WORDS = [
    "Awkward",
    "Helpless",
    "Salamander",
    "SwiftRage",
    "Brave",
    "Tiny",
    "Lucky",
    "Gentle",
    "Noisy",
    "Cheerful",
    "Otter",
    "Falcon",
    "Kappa",
    "PogChamp",
    "Panda",
    "Crispy",
    "Sleepy",
    "Quiet",
    "Wild",
    "Golden",
]
EPOCH_END = datetime(2026, 11, 1, tzinfo=UTC)


def _pseudo_word(rng: random.Random) -> str:
    syllables = [
        "ka",
        "ro",
        "mi",
        "zu",
        "po",
        "le",
        "ta",
        "ny",
        "qu",
        "ex",
        "ar",
        "ol",
        "sh",
        "gr",
        "in",
        "ve",
        "dr",
        "ul",
        "fy",
        "ck",
        "ba",
        "ne",
        "si",
        "to",
    ]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))


class Zipf:
    """Draws indexes 0..n-1 with probability proportional to 1/(i+1)^s."""

    def __init__(self, n: int, s: float, rng: random.Random) -> None:
        weights = [1.0 / (i + 1) ** s for i in range(n)]
        self._cumulative = list(itertools.accumulate(weights))
        self._rng = rng

    def draw(self) -> int:
        x = self._rng.random() * self._cumulative[-1]
        return bisect.bisect_left(self._cumulative, x)


@dataclass(frozen=True)
class SyntheticChannel:
    id: str
    login: str
    display_name: str
    created_at: datetime


@dataclass(frozen=True)
class SyntheticGame:
    id: str
    name: str


class World:
    """The channels, games and vocabulary a seed produces."""

    def __init__(
        self,
        seed: int = 1,
        channels: int = 200,
        games: int = 300,
        vocabulary: int = 20_000,
        creators: int = 50_000,
    ) -> None:
        self.seed = seed
        rng = random.Random(seed)
        self.channels = [
            SyntheticChannel(
                id=str(40_000_000 + i * 7919),
                login=f"{_pseudo_word(rng)}_{i}",
                display_name="",
                created_at=EPOCH_END - timedelta(days=rng.randint(1200, 4000)),
            )
            for i in range(channels)
        ]
        self.channels = [
            SyntheticChannel(c.id, c.login, c.login.replace("_", "").title() + "TV", c.created_at)
            for c in self.channels
        ]
        self.games = [
            SyntheticGame(id=str(500_000 + i * 13), name=f"{_pseudo_word(rng).title()} {i}")
            for i in range(games)
        ]
        words = list(COMMON_WORDS)
        seen = set(words)
        while len(words) < vocabulary:
            word = _pseudo_word(rng)
            if word not in seen:
                seen.add(word)
                words.append(word)
        self.vocabulary = words
        self.creators = [(str(900_000_000 + i), f"{_pseudo_word(rng)}{i}") for i in range(creators)]

    def clips(
        self, n: int, *, span_days: int = 3 * 365, end: datetime = EPOCH_END, start_index: int = 0
    ) -> Iterator[dict[str, Any]]:
        """n Helix clip objects, exactly as Get Clips returns them."""
        rng = random.Random(self.seed * 1_000_003 + start_index)
        word_dist = Zipf(len(self.vocabulary), 1.0, rng)
        channel_dist = Zipf(len(self.channels), 0.8, rng)
        game_dist = Zipf(len(self.games), 1.1, rng)
        creator_dist = Zipf(len(self.creators), 0.9, rng)
        span = span_days * 86_400
        for i in range(start_index, start_index + n):
            channel = self.channels[channel_dist.draw()]
            creator_id, creator_name = self.creators[creator_dist.draw()]
            title = " ".join(self.vocabulary[word_dist.draw()] for _ in range(rng.randint(2, 7)))
            if rng.random() < 0.3:
                title = title.capitalize()
            if rng.random() < 0.05:
                title += rng.choice([" !!!", " :)", " (part 2)", " #1", " 🔥"])
            created = end - timedelta(seconds=rng.randint(0, span))
            views = int(rng.paretovariate(1.1)) - 1
            if rng.random() < 0.001:
                views *= 1000
            suffix = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(12))
            slug = "".join(rng.choice(CLIP_WORDS) for _ in range(4)) + f"-{suffix}{i}"
            has_vod = rng.random() < 0.7
            yield {
                "id": slug,
                "url": f"https://clips.twitch.tv/{slug}",
                "embed_url": f"https://clips.twitch.tv/embed?clip={slug}",
                "broadcaster_id": channel.id,
                "broadcaster_name": channel.display_name,
                "creator_id": creator_id,
                "creator_name": creator_name,
                "video_id": str(2_000_000_000 + rng.randint(0, 10**8)) if has_vod else "",
                "game_id": self.games[game_dist.draw()].id,
                "language": rng.choice(LANGUAGES),
                "title": title,
                "view_count": views,
                "created_at": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "thumbnail_url": f"https://clips-media-assets2.twitch.tv/{slug}-preview-480x272.jpg",
                "duration": round(rng.uniform(5.0, 60.0), 1),
                "vod_offset": rng.randint(0, 40_000) if has_vod else None,
                "is_featured": rng.random() < 0.02,
            }
