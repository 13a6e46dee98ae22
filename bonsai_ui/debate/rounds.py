"""A BONSAI debate, as data: rounds of answer, rebuttal and fact-based questions, and the pure
logic over them (the questions' parser, the depth measure, the automatic pick, stale marking).

The seed's complaint (「質問が深堀されていない」) is that group A's answer only fed group A's
next question. Here every round is: one side answers the question, the other side rebuts it (with
reasoning the user may edit), five fact-based questions are asked of answer and rebuttal together,
one is picked, and the next round swaps the sides.

Like the attempt history, a debate lives in the browser: plain dicts and lists, read back
defensively (``Debate.from_data``). No Gradio here.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

DEBATE_VERSION = 1
SIDES = ("A", "B")
LANGUAGES = ("en", "ja")
MAX_QUESTIONS = 5  # the seed's template asks for 5 paragraphs
# An answer, rebuttal or question longer than this is refused before any model call, with the
# counts: ~4 pages of text, already more than the embedded model's 2,048-token context holds, and
# the browser keeps every round of a debate.
MAX_TEXT_CHARS = 12_000
MAX_ROUNDS = 50  # a debate of 50 rounds is ~1 MB of browser storage at most (3 × 2 × MAX_TEXT_CHARS)
STEP_KINDS = ("answer", "rebuttal", "questions")

# BONSAI's str_goal: what each side believes and argues for. Editable on the page.
DEFAULT_GOALS = {
    "en": {"A": "Group A believes that AI will make people's work and lives better, and argues for "
                "using it widely and soon.",
           "B": "Group B believes that AI threatens jobs, privacy and human judgement, and argues "
                "for strict limits before it spreads."},
    "ja": {"A": "グループAは、AIが人々の仕事と生活を良くすると信じ、早く広く使うべきだと主張する。",
           "B": "グループBは、AIが雇用・プライバシー・人間の判断を脅かすと信じ、広まる前に厳しい"
                "制限が必要だと主張する。"},
}
DEFAULT_QUESTION = {
    "en": "Should companies replace human customer support with AI?",
    "ja": "企業は人間のカスタマーサポートをAIに置き換えるべきか？",
}


class DebateError(ValueError):
    """Bad input to a debate step, shown to the user as is."""


def other(side: str) -> str:
    return "B" if side == "A" else "A"


_JA_NAMES = {"answer": "回答", "question": "質問", "goal of group A": "グループAの目標",
             "goal of group B": "グループBの目標"}


def check_text(name: str, text: str) -> str:
    """Refuse an empty or over-long text, saying the counts and the limit."""
    text, ja = text or "", _JA_NAMES.get(name, name)
    if not text.strip():
        raise DebateError(f"The {name} is empty. / {ja}が空です。")
    if len(text) > MAX_TEXT_CHARS:
        raise DebateError(f"The {name} is {len(text):,} characters, over the limit of "
                          f"{MAX_TEXT_CHARS:,}. / {ja}が長すぎます（{len(text):,} 文字、上限 "
                          f"{MAX_TEXT_CHARS:,} 文字）。")
    return text


# -- fact-based questions ------------------------------------------------------------------------

@dataclass(frozen=True)
class FactQuestion:
    topic: str
    question: str

    @property
    def text(self) -> str:
        """The whole paragraph: what the next round is asked."""
        return f"{self.topic} {self.question}".strip()


# "PARAGRAPH:" anywhere (the model may repeat it, number it, bold it or forget the space).
_PARAGRAPH = re.compile(r"(?:\*\*)?\bPARAGRAPH\s*\d*\s*[:：](?:\*\*)?\s*", re.I)
# A line that opens a list item: "1.", "2)", "(3)", "**4.**", "-", "*", "•", "・", "①", "Q1:",
# "Question 2:".
_ITEM = re.compile(r"^\s*(?:\*\*)?(?:\(?\d{1,2}[.)．、]|\(\d{1,2}\)|[-*•・●]|[①-⑩]|"
                   r"(?:Q|Question)\s*\d{1,2}\s*[:：.)])(?:\*\*)?\s*", re.I)
_LABEL = re.compile(r"\b(?:topic|question|FACT_BASED_QUESTION)\s*[:：]\s*|\*\*", re.I)
# The end of a sentence: Western punctuation before a space, or Japanese punctuation.
_SENTENCE_END = re.compile(r"[.!?](?=\s)|[。！？]")


def _items(text: str) -> list[str]:
    """The paragraphs of a model's output, however it marked them: at each ``PARAGRAPH:``, at
    list markers (when there are at least two), and at blank lines. Without either marker a line
    that ends in a question mark ends its paragraph too: the template puts topic and question on
    one line, so a paragraph's question is its last words."""
    marked = bool(_PARAGRAPH.search(text))
    lines = _PARAGRAPH.sub("\n\0", text).split("\n")
    listed = sum(bool(_ITEM.match(line)) for line in lines) >= 2
    items: list[list[str]] = [[]]
    for line in lines:
        starts = _ITEM.match(line) if listed else None
        if line.startswith("\0") or starts or not line.strip():
            items.append([])
        line = line.lstrip("\0")
        line = line[starts.end():] if starts else line
        if line.strip():
            items[-1].append(line.strip())
            if not marked and not listed and line.rstrip().endswith(("?", "？")):
                items.append([])
    # A list marker left alone before a PARAGRAPH: ("1. PARAGRAPH: …") is no paragraph.
    return [" ".join(item) for item in items if any(ch.isalnum() for ch in " ".join(item))]


def _split_question(item: str) -> FactQuestion | None:
    """Topic sentences, then the question: the last sentence that ends with "?" (or "？")."""
    item = re.sub(r"\s+", " ", _LABEL.sub(" ", item)).strip()
    end = max(item.rfind("?"), item.rfind("？"))
    if end < 0:
        return None
    head = item[:end]
    start = 0
    for match in _SENTENCE_END.finditer(head):
        start = match.end()
    return FactQuestion(item[:start].strip(), item[start:end + 1].strip())


def parse_fact_questions(text: str) -> list[FactQuestion]:
    """Up to five fact-based questions from the model's output; [] when it wrote none.

    Tolerant of what small models write: numbered or bulleted lists, a missing or repeated
    ``PARAGRAPH:``, a "?" inside the topic (the question is the last sentence ending in "?"),
    Japanese punctuation. A paragraph without any "?" is not a question and is left out;
    repeated questions are kept once.
    """
    found: list[FactQuestion] = []
    for item in _items(text or ""):
        q = _split_question(item)
        if q and q.question.strip("?？ ") and all(q.question != f.question for f in found):
            found.append(q)
    return found[:MAX_QUESTIONS]


def hand_question(text: str) -> FactQuestion:
    """A question the user wrote: topic and question split as in a model's paragraph when it
    ends in a question mark, else the whole text as the question (a user may ask without one)."""
    text = re.sub(r"\s+", " ", check_text("question", text)).strip()
    split = _split_question(text) if text.endswith(("?", "？")) else None
    return split if split and split.question.strip("?？ ") else FactQuestion("", text)


# -- depth: how much a new question repeats the earlier ones -------------------------------------

_TOKEN = re.compile(r"[a-z0-9']+|[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
NGRAM = 2  # word pairs: single words repeat in any debate on one subject; pairs repeat phrasing


def ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    """Word n-grams, lower-cased; Japanese (no spaces) counts each character as a word."""
    tokens = _TOKEN.findall((text or "").lower())
    return {tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)}


def overlap(text: str, earlier: list[str], n: int = NGRAM) -> float | None:
    """The share of ``text``'s n-grams that occur in any of ``earlier``; None without n-grams or
    without anything earlier to compare with."""
    grams = ngrams(text, n)
    seen = set().union(*(ngrams(e, n) for e in earlier)) if earlier else set()
    if not grams or not earlier:
        return None
    return len(grams & seen) / len(grams)


def pick_automatically(questions: list[FactQuestion], earlier: list[str]) -> int | None:
    """The automatic pick: the question that repeats the earlier questions least (lowest overlap),
    the first one on a tie; None when there is none. This digs where the debate has not been."""
    if not questions:
        return None
    scores = [overlap(q.text, earlier) or 0.0 for q in questions]
    return scores.index(min(scores))


# -- the debate ----------------------------------------------------------------------------------

@dataclass
class Step:
    """One model call of a round: the answer, the rebuttal, or the questions (vanilla, no reasoning)."""

    reasoning_generated: str = ""  # as the model wrote it
    reasoning_sent: str = ""  # as the user edited and sent it; equal to the above when unedited
    text: str = ""  # the response: answer, rebuttal, or the questions' raw text
    prompt: str = ""  # exactly what was sent
    stats: str = ""
    stale: bool = False  # a step before it was re-run after it was made

    @property
    def done(self) -> bool:
        return bool(self.text.strip() or self.reasoning_sent.strip())

    @property
    def reasoning(self) -> str:
        return self.reasoning_sent or self.reasoning_generated


@dataclass
class Round:
    question: str
    answerer: str  # "A" or "B"; the other side rebuts
    answer: Step = field(default_factory=Step)
    rebuttal: Step = field(default_factory=Step)
    questions_step: Step = field(default_factory=Step)
    questions: list[FactQuestion] = field(default_factory=list)
    picked: int | None = None
    depth: float | None = None  # overlap of this round's new questions with the earlier ones

    @property
    def rebutter(self) -> str:
        return other(self.answerer)

    def step(self, kind: str) -> Step:
        return {"answer": self.answer, "rebuttal": self.rebuttal, "questions": self.questions_step}[kind]

    @property
    def picked_question(self) -> FactQuestion | None:
        if self.picked is None or not 0 <= self.picked < len(self.questions):
            return None
        return self.questions[self.picked]


@dataclass
class Debate:
    goals: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_GOALS["en"]))
    language: str = "en"
    prompt_format: str = "alpaca"
    rounds: list[Round] = field(default_factory=list)
    # the questions step under the format's grammar (core/constraints.py), or the model's free
    # text read by the tolerant parser, as the seed did
    enforce_format: bool = True

    # -- steps and stale marking -----------------------------------------------------------------

    def mark_after(self, round_index: int, kind: str) -> int:
        """Mark every step after (round, kind) stale; return how many were marked.

        Called when a step is re-run: what followed it was made from the old version, so it is
        kept (not silently deleted) and flagged until it is re-run in turn.
        """
        marked = 0
        for r, rnd in enumerate(self.rounds):
            for k in STEP_KINDS:
                later = r > round_index or (r == round_index and
                                            STEP_KINDS.index(k) > STEP_KINDS.index(kind))
                step = rnd.step(k)
                if later and step.done and not step.stale:
                    step.stale = True
                    marked += 1
        return marked

    def earlier_questions(self, round_index: int) -> list[str]:
        """Every question asked before round ``round_index``'s questions: the rounds' questions and
        the fact-based questions of the earlier rounds."""
        texts = [r.question for r in self.rounds[: round_index + 1]]
        for rnd in self.rounds[:round_index]:
            texts += [q.text for q in rnd.questions]
        return texts

    def set_questions(self, round_index: int, questions: list[FactQuestion]) -> None:
        """Store the round's questions, their depth and the automatic pick."""
        rnd = self.rounds[round_index]
        earlier = self.earlier_questions(round_index)
        rnd.questions = questions
        scores = [s for s in (overlap(q.text, earlier) for q in questions) if s is not None]
        rnd.depth = sum(scores) / len(scores) if scores else None
        rnd.picked = pick_automatically(questions, earlier)

    def put_question(self, round_index: int, text: str, replace: int | None = None) -> int:
        """Add a question the user wrote to the round's questions (or put it in place of question
        ``replace``) and pick it; return its index. The model may write none that can be read, and
        a round can always go on. Later rounds were asked another question: stale."""
        rnd = self.rounds[round_index]
        question, questions = hand_question(text), list(rnd.questions)
        if replace is None:
            if len(questions) >= MAX_QUESTIONS:
                raise DebateError(f"A round holds at most {MAX_QUESTIONS} questions: pick one and "
                                  f"replace it instead. / 質問は最大 {MAX_QUESTIONS} 個です。選んで置き換えてください。")
            questions.append(question)
        elif 0 <= replace < len(questions):
            questions[replace] = question
        else:
            raise DebateError("Pick the question to replace first. / 置き換える質問を先に選んでください。")
        self.set_questions(round_index, questions)
        rnd.picked = len(questions) - 1 if replace is None else replace
        self.mark_after(round_index, "questions")
        return rnd.picked

    def next_round(self, round_index: int) -> int:
        """Start (or restart, when it exists) the round after ``round_index`` with its picked
        question and the sides swapped; rounds after that one stay, stale."""
        rnd = self.rounds[round_index]
        picked = rnd.picked_question
        if picked is None:
            raise DebateError("Pick one of the fact-based questions first (generate them if there "
                              "are none). / 先に事実に基づく質問を1つ選んでください。")
        if round_index + 1 >= MAX_ROUNDS:
            raise DebateError(f"A debate holds at most {MAX_ROUNDS} rounds. / 最大 {MAX_ROUNDS} ラウンドです。")
        new = Round(question=picked.text, answerer=rnd.rebutter)
        if round_index + 1 < len(self.rounds):
            self.rounds[round_index + 1] = new
            self.mark_after(round_index + 1, "questions")
        else:
            self.rounds.append(new)
        return round_index + 1

    # -- storage ---------------------------------------------------------------------------------

    def to_data(self) -> dict:
        return {"version": DEBATE_VERSION, **asdict(self)}

    @classmethod
    def from_data(cls, data: Any) -> tuple["Debate", str]:
        """The stored debate and a warning; anything unreadable gives a new debate and says so."""
        if not data or (isinstance(data, dict) and not data.get("rounds") and "goals" not in data):
            return cls(), ""
        try:
            return cls._parse(data), ""
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            return cls(), f"The stored debate could not be read ({error}); a new one was started. / " \
                          "保存された討論を読めなかったため、新しく始めました。"

    @classmethod
    def _parse(cls, data: dict) -> "Debate":
        if data.get("version") != DEBATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {DEBATE_VERSION}")
        goals = data["goals"]
        if set(goals) != set(SIDES) or not all(isinstance(v, str) for v in goals.values()):
            raise ValueError("goals must be texts for sides A and B")
        if data["language"] not in LANGUAGES:
            raise ValueError(f"language {data['language']!r}")
        rounds = [_round(r) for r in data["rounds"]]
        enforce = data.get("enforce_format", True)  # debates stored before the setting: enforced
        if not isinstance(enforce, bool):
            raise ValueError(f"enforce_format must be true or false, not {enforce!r}")
        return cls(goals=dict(goals), language=data["language"], prompt_format=str(data["prompt_format"]),
                   rounds=rounds, enforce_format=enforce)


def _step(data: dict) -> Step:
    step = Step(**{k: data[k] for k in ("reasoning_generated", "reasoning_sent", "text", "prompt",
                                        "stats")}, stale=bool(data["stale"]))
    if not all(isinstance(getattr(step, k), str) for k in ("reasoning_generated", "reasoning_sent",
                                                            "text", "prompt", "stats")):
        raise ValueError("a step's texts must be strings")
    return step


def _round(data: dict) -> Round:
    if data["answerer"] not in SIDES or not isinstance(data["question"], str):
        raise ValueError("a round needs a question and an answering side A or B")
    questions = [FactQuestion(str(q["topic"]), str(q["question"])) for q in data["questions"]]
    picked = data.get("picked")
    if picked is not None and not (isinstance(picked, int) and 0 <= picked < len(questions)):
        raise ValueError(f"picked question {picked!r} out of range")
    depth = data.get("depth")
    return Round(question=data["question"], answerer=data["answerer"], answer=_step(data["answer"]),
                 rebuttal=_step(data["rebuttal"]), questions_step=_step(data["questions_step"]),
                 questions=questions, picked=picked,
                 depth=float(depth) if depth is not None else None)
