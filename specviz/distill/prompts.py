"""Prompts for distillation data: seed instructions we write, and starters the target
completes into user messages of its own (Magpie-style: the target is given its chat template
up to the user turn and writes the question itself).

Four categories, as in the held-out set: chat, story, explanation, code. Nothing here is
taken from ``assets/prompts/heldout.jsonl``; ``tests/test_distill.py`` checks that.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ..paths import PROMPTS

CATEGORIES = ("chat", "story", "explanation", "code")
HELDOUT = PROMPTS / "heldout.jsonl"

TOPICS = [
    "the ocean", "volcanoes", "honey bees", "the moon", "rainforests", "deserts", "glaciers",
    "electric cars", "trains", "bicycles", "airplanes", "submarines", "bridges", "castles",
    "the printing press", "the internet", "smartphones", "batteries", "solar panels",
    "wind turbines", "recycling", "composting", "gardening", "tomatoes", "coffee", "tea",
    "bread baking", "chocolate", "cheese", "pizza", "soup", "breakfast", "vegetarian cooking",
    "running", "swimming", "chess", "football", "basketball", "yoga", "sleep", "meditation",
    "friendship", "moving to a new city", "learning a language", "job interviews",
    "public speaking", "time management", "saving money", "budgeting", "renting a flat",
    "dogs", "cats", "owls", "dolphins", "elephants", "ants", "spiders", "dinosaurs",
    "photosynthesis", "gravity", "magnets", "electricity", "sound waves", "light", "rainbows",
    "clouds", "thunderstorms", "earthquakes", "tides", "the seasons", "climate change",
    "vaccines", "the immune system", "the heart", "bones", "DNA", "evolution", "cells",
    "black holes", "Mars", "the solar system", "stars", "telescopes", "rockets",
    "ancient Egypt", "the Roman Empire", "the Vikings", "the Renaissance", "the Silk Road",
    "the Industrial Revolution", "democracy", "taxes", "inflation", "supply and demand",
    "music", "the piano", "painting", "photography", "poetry", "libraries", "museums",
    "robots", "artificial intelligence", "video games", "computers", "passwords",
    "encryption", "databases", "spreadsheets", "email", "open source software",
    "a lighthouse keeper", "a lost key", "a talking tree", "a small village", "a dragon",
    "a time machine", "a detective", "a pirate ship", "a snowy mountain", "a haunted house",
    "a robot chef", "a secret garden", "a long train journey", "a city under the sea",
]

CODE_TASKS = [
    "reverses a string", "checks whether a number is prime", "counts the vowels in a text",
    "returns the largest element of a list", "computes the factorial of n",
    "computes the n-th Fibonacci number", "removes duplicates from a list",
    "checks whether a word is a palindrome", "sorts a list of dictionaries by a key",
    "reads a text file and counts its lines", "merges two sorted lists",
    "converts Celsius to Fahrenheit", "finds the second smallest number in a list",
    "flattens a nested list", "counts word frequencies in a sentence",
    "computes the average of a list of numbers", "checks whether two strings are anagrams",
    "returns the common elements of two lists", "capitalizes every word in a sentence",
    "implements binary search", "computes the greatest common divisor of two numbers",
    "generates all subsets of a list", "validates a simple email address",
    "rotates a list by k positions", "transposes a matrix", "sums the digits of a number",
    "finds the longest word in a sentence", "converts a decimal number to binary",
    "implements a stack class", "implements a queue with two stacks",
]
LANGUAGES = ["Python", "Python", "Python", "JavaScript", "C", "Java", "Rust", "Go", "SQL",
             "Bash"]

TEMPLATES = {
    "chat": [
        "What do you think about {t}?", "Can you give me some tips about {t}?",
        "I want to learn more about {t}. Where should I start?",
        "Tell me three interesting facts about {t}.", "Why do people like {t}?",
        "What are the pros and cons of {t}?", "Give me a short list of ideas related to {t}.",
        "Hi! Can we talk about {t}?", "What is a common mistake people make about {t}?",
        "Summarize what you know about {t} in a few sentences.",
    ],
    "story": [
        "Write a short story about {t}.", "Tell me a bedtime story about {t}.",
        "Write a poem about {t}.", "Write a funny story involving {t}.",
        "Write the opening paragraph of a novel about {t}.",
        "Write a short fable with a moral about {t}.",
        "Describe a day in the life of someone who loves {t}.",
        "Write a short dialogue between two friends about {t}.",
    ],
    "explanation": [
        "Explain {t} to a ten-year-old.", "How does {t} work?",
        "Explain the history of {t} briefly.", "What is the science behind {t}?",
        "Describe {t} in simple terms.", "Why is {t} important?",
        "Explain step by step how {t} affects everyday life.",
        "Compare {t} with something similar and explain the differences.",
    ],
    "code": [
        "Write a {lang} function that {task}.", "How do I write code in {lang} that {task}?",
        "Show me a {lang} program that {task}, with comments.",
        "Write a {lang} function that {task} and explain how it works.",
        "Can you write a short {lang} snippet that {task}?",
    ],
}

# beginnings of user messages the target continues itself (empty: a free user turn)
STARTERS = {
    "chat": ["", "", "", "Can you", "What", "I", "How can I", "Hi", "Do you", "Give me",
             "What is the best way to", "I need help"],
    "story": ["Write a story", "Write a poem", "Tell me a story", "Write a short",
              "Imagine", "Create a"],
    "explanation": ["Explain", "How does", "What is", "Why do", "Why is", "Describe",
                    "What are the differences between"],
    "code": ["Write a Python function", "Write a Python", "How do I", "Write a program",
             "Write a JavaScript function", "Write code", "Can you write a function",
             "Fix this code", "Implement"],
}


def seed_prompts(seed: int = 0) -> list[dict]:
    """Every template filled with every topic (code: task x language), shuffled.

    Returns [{"prompt", "category", "source": "seed"}]."""
    rng = random.Random(seed)
    out = []
    for cat in ("chat", "story", "explanation"):
        for t in TOPICS:
            for tpl in TEMPLATES[cat]:
                out.append({"prompt": tpl.format(t=t), "category": cat, "source": "seed"})
    for task in CODE_TASKS:
        for lang in sorted(set(LANGUAGES)):
            for tpl in TEMPLATES["code"]:
                out.append({"prompt": tpl.format(lang=lang, task=task), "category": "code",
                            "source": "seed"})
    rng.shuffle(out)
    return out


def starter_list(n: int, seed: int = 0, code_share: float | None = None) -> list[dict]:
    """n starters for self-written prompts, categories in turn: [{"starter", "category"}];
    with ``code_share``, that share of them code and the rest the other categories in turn."""
    rng = random.Random(seed + 1)
    if code_share is None:
        cats = [CATEGORIES[i % 4] for i in range(n)]
    else:
        n_code = round(n * code_share)
        cats = ["code"] * n_code + [CATEGORIES[i % 3] for i in range(n - n_code)]
        rng.shuffle(cats)
    return [{"starter": rng.choice(STARTERS[c] + (MORE_CODE_STARTERS if c == "code" and
                                                 code_share is not None else [])),
             "category": c} for c in cats]


# more code, for a target that is a coder (Qwen2.5-Coder): tasks, languages and requests
MORE_CODE_TASKS = [
    "parses a CSV line into fields", "checks whether brackets in a string are balanced",
    "returns the n-th row of Pascal's triangle", "converts a Roman numeral to an integer",
    "counts the islands in a grid of 0s and 1s", "finds the most common element in a list",
    "implements a linked list with insert and delete", "computes the edit distance of two "
    "strings", "groups a list of words by their first letter", "chunks a list into pieces of "
    "size k", "computes a running total of a list", "checks whether a year is a leap year",
    "returns the indices of two numbers that add up to a target", "memoizes a slow function",
    "reads a JSON file and prints one of its keys", "implements quicksort",
    "implements merge sort", "computes the power set of a string's characters",
    "validates a date string in the form YYYY-MM-DD", "finds all primes below n with a sieve",
    "compresses a string by counting repeated characters", "implements a binary tree with "
    "an in-order traversal", "finds the maximum sum of a contiguous subarray",
    "computes the dot product of two vectors", "implements an LRU cache",
    "retries a function call up to three times", "formats a number with thousands separators",
    "converts a string to snake_case", "deep-copies a nested dictionary",
    "finds the intersection of two sorted arrays",
]
MORE_CODE_LANGUAGES = ["Python", "Python", "TypeScript", "C++", "C#", "Kotlin", "Ruby", "PHP"]
MORE_CODE_TEMPLATES = [
    "Write a {lang} function that {task}.", "Implement a {lang} function that {task}.",
    "Write unit tests for a {lang} function that {task}.",
    "Write a {lang} function that {task}, with type hints and a docstring.",
    "What is the time complexity of a {lang} function that {task}? Show the code.",
    "Refactor this idea into clean {lang}: a function that {task}.",
    "Give me an efficient {lang} solution: a function that {task}.",
]
MORE_CODE_STARTERS = ["Write a Python script", "Write a SQL query", "Write a C++ function",
                      "Explain this code", "Write a unit test", "Optimize", "Debug",
                      "Write a class", "Convert this", "Write a bash script"]


def code_prompts(seed: int = 0) -> list[dict]:
    """Further code prompts (``MORE_CODE_*``, every task and template in two languages),
    shuffled: [{"prompt", "category": "code", "source": "seed"}]."""
    rng = random.Random(seed + 2)
    langs = sorted(set(LANGUAGES) | set(MORE_CODE_LANGUAGES))
    out = []
    for task in MORE_CODE_TASKS + CODE_TASKS:
        for tpl in MORE_CODE_TEMPLATES:
            for lang in rng.sample(langs, 2):
                out.append({"prompt": tpl.format(lang=lang, task=task), "category": "code",
                            "source": "seed"})
    rng.shuffle(out)
    return out


def self_prompt_prefix(tokenizer, starter: str) -> str:
    """The chat template up to (and into) a user turn: the target writes the rest of it."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": "\x00"}], tokenize=False)
    head = text[: text.index("\x00")]
    return head + starter


def chat_text(tokenizer, prompt: str, answer: str | None = None) -> str:
    """A prompt (and optionally its answer) through the tokenizer's chat template, exactly as
    ``specviz.decoding.encode_prompt`` builds the prompt."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         tokenize=False, add_generation_prompt=True)
    return text if answer is None else text + answer


def load_heldout(path: str | Path = HELDOUT) -> list[dict]:
    """The held-out prompts: [{"prompt", "category"}] (never used in training)."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    for r in rows:
        if r.get("category") not in CATEGORIES or not r.get("prompt"):
            raise ValueError(f"bad held-out row: {r}")
    return rows
