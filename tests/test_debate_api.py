"""The debate's endpoints through gradio_client, on the embedded model: /fact_questions, /rebut."""

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from bonsai_ui.debate import MAX_TEXT_CHARS, parse_fact_questions

ANSWER = ("AI should answer customer calls: it never sleeps, it costs less than a call centre, and "
          "customers get an answer at once.")
QUESTION = "Should companies replace human customer support with AI?"


@pytest.fixture(scope="module")
def client(real_app):
    return Client(real_app.url, verbose=False)


def test_fact_questions_returns_the_parsed_questions_and_the_raw_text(client):
    questions, raw = client.predict(ANSWER, api_name="/fact_questions")
    assert raw.strip()
    assert questions == [{"topic": q.topic, "question": q.question} for q in parse_fact_questions(raw)]


def test_rebut_reasons_then_rebuts(client):
    reasoning, rebuttal = client.predict(QUESTION, ANSWER, max_new_tokens=96, api_name="/rebut")
    assert reasoning.strip() and rebuttal.strip()


def test_rebut_from_a_given_reasoning_uses_it_as_written(client):
    given = "The answer forgets the customers who cannot use a chatbot: the old, the angry, the deaf."
    reasoning, rebuttal = client.predict(QUESTION, ANSWER, "Group B defends human work.", given,
                                         max_new_tokens=64, api_name="/rebut")
    assert reasoning == given and rebuttal.strip()


@pytest.mark.parametrize("endpoint,args,message", [
    ("/fact_questions", dict(answer=""), "The answer is empty"),
    ("/fact_questions", dict(answer="   \n"), "The answer is empty"),
    ("/fact_questions", dict(answer="x" * (MAX_TEXT_CHARS + 1)),
     f"{MAX_TEXT_CHARS + 1:,} characters, over the limit of {MAX_TEXT_CHARS:,}"),
    ("/rebut", dict(question=QUESTION, answer=""), "The answer is empty"),
    ("/rebut", dict(question=QUESTION, answer="x" * (MAX_TEXT_CHARS + 1)), "over the limit"),
    ("/rebut", dict(question=QUESTION, answer=ANSWER, prompt_format="nope"), "unknown prompt format"),
    ("/rebut", dict(question=QUESTION, answer="word " * 2300, max_new_tokens=2048), "over the model's context"),
    ("/fact_questions", dict(answer=ANSWER, max_new_tokens=0), "max_new_tokens = 0 is out of range"),
])
def test_bad_input_gets_a_clear_message_and_the_app_keeps_serving(client, endpoint, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(**args, api_name=endpoint)
    _, rebuttal = client.predict(QUESTION, ANSWER, max_new_tokens=8, api_name="/rebut")
    assert rebuttal is not None
