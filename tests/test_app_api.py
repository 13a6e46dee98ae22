"""The launched app through gradio_client, as an API user (or a notebook) would drive it."""

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from bonsai_ui.core.prompts import examples

QUESTION = "Jack has 4 pears and eats 5 of them. How many pears are left?"


@pytest.fixture(scope="module")
def client(real_app):
    return Client(real_app.url, verbose=False)


def test_only_the_documented_endpoints_are_public(client):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/generate", "/regenerate", "/fact_questions", "/rebut",
                                           "/ablate"}
    required = {name: [p["parameter_name"] for p in e["parameters"] if not p["parameter_has_default"]]
                for name, e in api["named_endpoints"].items()}
    assert required == {"/generate": ["question"], "/regenerate": ["question"],
                        "/fact_questions": ["answer"], "/rebut": ["question", "answer"],
                        "/ablate": ["question"]}
    params = [p["parameter_name"] for p in api["named_endpoints"]["/generate"]["parameters"]]
    assert params == ["question", "input", "mode", "prompt_format", "reasoning", "max_new_tokens",
                      "temperature", "top_p", "top_k", "repetition_penalty", "seed"]
    params = [p["parameter_name"] for p in api["named_endpoints"]["/regenerate"]["parameters"]]
    assert params == ["question", "input", "reasoning", "prompt_format", "max_new_tokens",
                      "temperature", "top_p", "top_k", "repetition_penalty", "seed"]


def generate(client, question=QUESTION, mode="reasoning", fmt="alpaca", reasoning="", max_new_tokens=96):
    job = client.submit(question, "", mode, fmt, reasoning, max_new_tokens, 0.0, 0.95, 50, 1.1, 0,
                        api_name="/generate")
    updates = list(job)
    return updates, job.result()


@pytest.mark.parametrize("fmt", ["alpaca", "think"])
def test_generate_streams_reasoning_then_response(client, fmt):
    updates, (reasoning, response, stats, prompt) = generate(client, fmt=fmt)
    assert len(updates) >= 3, "streamed in several updates"
    assert reasoning.strip() and response.strip() and "✅ done" in stats
    first_with_response = next(i for i, u in enumerate(updates) if u[1])
    assert any(u[0] and not u[1] for u in updates[:first_with_response]), \
        "the reasoning fills before the response starts"
    assert "SmolLM2-135M-Instruct" in stats and "llama.cpp" in stats and "tok/s" in stats
    assert QUESTION in prompt


def test_regenerate_uses_the_edited_reasoning(client):
    _, (reasoning, response, _, _) = generate(client)
    edited = "Jack has only 4 pears, so eating 5 is impossible. The question has a false premise."
    job = client.submit(QUESTION, "", edited, "alpaca", 96, 0.0, 0.95, 50, 1.1, 0, api_name="/regenerate")
    new_response, stats, prompt = job.result()
    assert f"### Reasoning:\n{edited}\n\n### Response:\n" in prompt
    assert new_response.strip() and new_response != response
    assert "✅ done" in stats


def test_the_seed_example_runs_in_special_mode(client):
    ex = examples()[2]
    _, (reasoning, response, stats, prompt) = generate(client, ex.question, "special", "alpaca", ex.reasoning)
    assert reasoning == ex.reasoning and response.strip()
    assert f"### Reasoning:\n{ex.reasoning}\n\n### Response:\n" in prompt


@pytest.mark.parametrize("args,message", [
    (dict(question="   "), "Type a question first"),
    (dict(question="word " * 9000), "over the model's context of 8,192 tokens"),  # python app.py's
    (dict(max_new_tokens=0), "max_new_tokens = 0 is out of range"),
    (dict(max_new_tokens=10**7), "max_new_tokens"),
])
def test_bad_input_returns_a_clear_error(client, args, message):
    with pytest.raises(AppError, match=message):
        generate(client, **args)
    _, (_, response, stats, _) = generate(client, max_new_tokens=8)  # still serving
    assert "✅ done" in stats


def test_out_of_range_temperature_is_refused_on_the_server(client):
    with pytest.raises(AppError, match="temperature = 9.0 is out of range"):
        client.predict(QUESTION, "", "vanilla", "alpaca", "", 16, 9.0, 0.95, 50, 1.1, 0, api_name="/generate")


def test_optional_inputs_can_be_left_out(client):
    """Only the question is required: the optional input (and the reasoning) default to ""."""
    reasoning, response, stats, prompt = client.predict(question=QUESTION, max_new_tokens=32,
                                                        api_name="/generate")
    assert "✅ done" in stats and f"### Input:\n\n\n### Reasoning:\n" in prompt
