"""Test helper: a generated multilingual corpus and a small SentencePiece model trained on it
(XLM-RoBERTa's spm layout: <unk>=0, <s>=1, </s>=2), so tests need no download."""

from __future__ import annotations

import functools
import io
import random

# Letters per script; words are drawn from them so the trainer sees every script.
SCRIPTS = {
    "latin": "abcdefghijklmnopqrstuvwxyzàáâäçèéêëíîïñóôöúûüßøåæœ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "chinese": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年",
    "japanese": "あいうえおかきくけこさしすせそたちつてとなにぬねのアイウエオカキクケコ",
    "hindi": "कखगघचछजझटठडढणतथदधनपफबभमयरलवशसह",
}
SENTENCES = [
    "Grüße aus Köln, señor Muñoz! Ça va très bien.",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم، كيف حالك؟",
    "我们在北京学习中文。你好世界",
    "こんにちは、世界。カタカナとひらがな。",
    "नमस्ते दुनिया, आप कैसे हैं?",
    "Emoji: 😀 🎉 👍🏽 and symbols © ™ €",
    "Mixed\twhitespace  here\n and   there\u00a0nbsp\u3000ideographic",
]
# What the parity tests tokenize: every script above, mixed whitespace, emoji, digits, and
# scripts the model never saw (Georgian, Tamil, Ethiopic, Cherokee, Linear B).
TEST_TEXTS = SENTENCES + [
    "  leading and trailing spaces  ",
    "Ünïcödé façade naïve café 12345 3.14",
    "ქართული ენა தமிழ் ኢትዮጵያ ᏣᎳᎩ 𐀀𐀁",
    "Hello 世界 мир عالم दुनिया 🌍!!",
    "",
    "\t\n",
    "a" * 60,
]


def corpus(lines=3000, seed=0):
    rng = random.Random(seed)
    scripts = list(SCRIPTS.values())
    out = []
    for i in range(lines):
        if i % 10 == 0:
            out.append(SENTENCES[(i // 10) % len(SENTENCES)])
            continue
        letters = scripts[i % len(scripts)]
        words = ["".join(rng.choice(letters) for _ in range(rng.randint(1, 7)))
                 for _ in range(rng.randint(3, 12))]
        if rng.random() < 0.3:
            words.append(rng.choice("😀🎉👍.,!?0123456789"))
        out.append(" ".join(words))
    return out


@functools.lru_cache(maxsize=4)
def train_spm(vocab_size=600, model_type="unigram") -> bytes:
    """Serialized SentencePiece model (deterministic for given arguments)."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=buffer, vocab_size=vocab_size,
        model_type=model_type, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        character_coverage=0.9995, num_threads=1, hard_vocab_limit=False,
        minloglevel=2)
    return buffer.getvalue()
