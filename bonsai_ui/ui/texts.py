"""Every label of the page, in English and Japanese (gr.I18n keys, shown after the browser's
language). Messages made on the server (errors, notices, stats) stay bilingual, since the server
does not know the language."""

from __future__ import annotations

import gradio as gr

from ..core.prompts import MODES, interventions
from ..core.settings import GENERATION_BOUNDS

TITLE = "BONSAI Reasoning Editor"

# Every label of the page: key -> (English, Japanese).
TEXTS: dict[str, tuple[str, str]] = {
    "intro": (f"# 🌳 {TITLE}\nAsk a question, watch the model **reason** and then **respond**. Edit "
              "the reasoning and regenerate: the answer follows the reasoning.",
              "# 🌳 BONSAI 推論エディタ\n質問すると、モデルが**推論**してから**回答**します。推論を書き換えて"
              "回答を再生成すると、回答が推論に従って変わります。"),
    "question": ("Question", "質問"),
    "question_placeholder": ("Type a question, or click an example below", "質問を入力するか、下の例をクリック"),
    "input": ("Input (optional)", "入力（任意）"),
    "mode": ("Mode", "モード"),
    "mode_reasoning": ("reasoning: the model reasons, then answers", "推論: 推論してから回答"),
    "mode_special": ("special: answer from the reasoning below", "特別: 下の推論から回答"),
    "mode_vanilla": ("vanilla: answer directly, no reasoning", "通常: 推論なしで回答"),
    "format": ("Prompt format", "プロンプト形式"),
    "format_info": ("alpaca: the seed's fine-tuned models; think: chat models with <think> tags",
                    "alpaca: 元記事のファインチューニング済みモデル、think: <think>タグのチャットモデル"),
    "generate": ("Generate ▶", "生成 ▶"),
    "stop": ("Stop ■", "停止 ■"),
    "reasoning": ("Reasoning", "推論"),
    "reasoning_info": ("Edit it, then regenerate the response or continue the reasoning",
                       "編集してから、回答を再生成するか推論を続けます"),
    "regenerate": ("Regenerate response from this reasoning ↻", "この推論から回答を再生成 ↻"),
    "continue": ("Continue reasoning ⇢", "推論を続ける ⇢"),
    "response": ("**Response**", "**回答**"),
    "settings": ("Generation settings", "生成設定"),
    "prompt_preview": ("Prompt preview", "プロンプト"),
    "prompt": ("Exact text for the model: a preview as you type, what was sent after a run",
               "モデルに送るテキスト（入力中はプレビュー、実行後は送ったもの）"),
    "examples": ("Examples from the seed document (one click loads them)", "例題（クリックで読み込み）"),
    "examples_embedded": (
        "The embedded model (SmolLM2-135M) is tiny and reads only English, so the English examples "
        "come first; the Japanese ones need a real fine-tune such as the seed's. An example also "
        "sets the prompt format and the settings it was checked with.",
        "内蔵モデル（SmolLM2-135M）は英語のみの小さなモデルなので、英語の例を先に並べています。日本語の例には"
        "元記事のようなファインチューニング済みモデルが必要です。例を選ぶと、確認済みのプロンプト形式と設定も"
        "入ります。"),
    "hint": ("**New here? Three steps:** ① **ask** a question and Generate, ② **edit the reasoning** "
             "the model wrote, ③ **regenerate** the response from it: the answer follows your edit. "
             "Or click **Show me** to watch it done.",
             "**はじめての方へ 3つのステップ:** ① 質問して**生成**、② モデルの書いた**推論を編集**、"
             "③ その推論から回答を**再生成**: 回答が編集に従って変わります。**やってみせて** で実演も見られます。"),
    "hint_dismiss": ("Got it ✕", "わかりました ✕"),
    "show_me": ("Show me ✨", "やってみせて ✨"),
    "show_me_info": ("A guided demo: the same question answered from two reasonings that differ in one "
                     "sentence, then compared (in the alpaca format, greedy, as the demo was checked).",
                     "実演: 1文だけ違う2つの推論から同じ質問に回答し、比較します（確認済みの alpaca 形式・"
                     "貪欲法で）。"),
    "tab_attempts": ("Attempts", "試行"),
    "tab_compare": ("Compare", "比較"),
    "tab_export": ("Export / import", "書き出し・読み込み"),
    "attempts_help": ("Every run is kept in this browser, newest first. Click **↩** to restore an "
                      "attempt into the editor, **★** to star it, **✗** to reject it, any other cell "
                      "to select it and write a note.",
                      "実行ごとにこのブラウザに保存されます（新しい順）。**↩** でエディタに戻す、**★** "
                      "でスター、**✗** で却下、その他のセルで選択してメモを書けます。"),
    "all_questions": ("All questions", "すべての質問"),
    "note": ("Note on the selected attempt", "選択した試行のメモ"),
    "note_placeholder": ("Click a cell of an attempt's row, then write here",
                         "試行の行のセルをクリックしてから、ここに書きます"),
    "save_note": ("Save note", "メモを保存"),
    "compare_a": ("A (before)", "A（前）"),
    "compare_b": ("B (after)", "B（後）"),
    "compare_help": ("Green: <ins>added in B</ins> · red, struck through: <del>removed from A</del>",
                     "緑: <ins>Bで追加</ins> · 赤（取り消し線）: <del>Aから削除</del>"),
    "diff_reasoning": ("Reasoning: A → B", "推論: A → B"),
    "diff_response": ("Response: A → B", "回答: A → B"),
    "scope": ("Attempts for Alpaca and chat files", "Alpaca・チャット形式に含める試行"),
    "scope_starred": ("starred ★", "スター付き ★"),
    "scope_all": ("all but rejected ✗", "却下 ✗ 以外すべて"),
    "export": ("Export JSONL (Alpaca, chat messages, DPO)", "JSONLに書き出す（Alpaca・チャット・DPO）"),
    "import": ("Import JSONL", "JSONLを読み込む"),
    "downloads": ("Exported files", "書き出したファイル"),
    "clear": ("Clear history…", "履歴を消去…"),
    "really_clear": ("Really clear all attempts?", "本当にすべて消去しますか？"),
    "cancel": ("Cancel", "キャンセル"),
    "ablation": ("Ablation map: which sentence does the answer depend on?",
                 "アブレーション: 回答はどの文に依存しているか"),
    "ablation_help": ("One click regenerates the response once per sentence of the reasoning above, "
                      "with that sentence removed (or replaced). The redder a sentence, the more the "
                      "response changed without it; **bold**: the final answer changed. Click a "
                      "sentence to see its response. The map is kept with its attempt (↩ reopens it).",
                      "上の推論の文ごとに、その文を削除（または置き換え）して回答を再生成します。赤いほど、"
                      "その文なしで回答が大きく変わりました。**太字**: 最終的な答えが変化。文をクリックすると"
                      "その回答を表示します。結果は試行と一緒に保存されます（↩ で再表示）。"),
    "abl_unit": ("Unit", "単位"),
    "abl_sentence": ("sentence", "文"),
    "abl_paragraph": ("paragraph", "段落"),
    "abl_action": ("Each unit is", "各単位を"),
    "abl_remove": ("removed", "削除"),
    "abl_replace": ("replaced by the text below", "下の文に置き換え"),
    "abl_preset": ("Replacement text", "置き換える文"),
    "abl_replacement": ("Replace each unit by (e.g. your own negation)", "各単位を置き換える文（否定文など）"),
    "abl_replacement_placeholder": ("Used when “replaced” is chosen", "「置き換え」を選んだときに使います"),
    "abl_run": ("Ablate: regenerate without each sentence ▶", "アブレーション: 文ごとに除いて再生成 ▶"),
    "abl_export": ("Export CSV / JSONL", "CSV・JSONLに書き出す"),
    "tab_editor": ("Editor ✎", "エディタ ✎"),
    "tab_debate": ("Debate ⚖", "討論 ⚖"),
    "debate_help": ("Two groups debate. Each round one side **answers** the question, the other side "
                    "**rebuts** it with reasoning you can edit (edit it, then regenerate the rebuttal "
                    "from it), then the seed's template asks five **fact-based questions** of answer "
                    "and rebuttal; pick one (or write your own) and the next round swaps the sides. Generation settings "
                    "are the editor's.",
                    "2つのグループが討論します。各ラウンドで一方が質問に**回答**し、もう一方が編集できる推論"
                    "で**反論**します（推論を編集して反論を再生成できます）。次に元記事のテンプレートで回答と"
                    "反論から**事実に基づく質問**を5つ作り、1つ選ぶ（または自分で書く）と次のラウンドで立場が入れ替わります。"
                    "生成設定はエディタと共通です。"),
    "goal_a": ("Goal of group A (what it believes)", "グループAの目標（信念）"),
    "goal_b": ("Goal of group B (what it believes)", "グループBの目標（信念）"),
    "language": ("Language of the debate", "討論の言語"),
    "debate_question": ("Question of this round", "このラウンドの質問"),
    "start": ("Start a debate on this question ▶", "この質問で討論を始める ▶"),
    "round": ("Round", "ラウンド"),
    "answer_reasoning": ("Answer: reasoning", "回答: 推論"),
    "rebuttal_reasoning": ("Rebuttal: reasoning (edit it to steer the rebuttal)",
                           "反論: 推論（編集して反論を導く）"),
    "answer_btn": ("Answer ▶", "回答 ▶"),
    "rebut_btn": ("Rebut ▶", "反論 ▶"),
    "regenerate_answer": ("Regenerate answer from this reasoning ↻", "この推論から回答を再生成 ↻"),
    "regenerate_rebuttal": ("Regenerate rebuttal from this reasoning ↻", "この推論から反論を再生成 ↻"),
    "fbq_btn": ("Fact-based questions ▶", "事実に基づく質問 ▶"),
    "enforce_format": ("Hold the questions to their format", "質問の形式を守らせる"),
    "enforce_format_info": ("On: the engine writes exactly five “PARAGRAPH: … ?” lines, asking Why, "
                            "What, How, Which and When. Off: the model's free text, read as well as "
                            "it can be, as in the seed.",
                            "オン: 「PARAGRAPH: … ?」の5行（Why・What・How・Which・When）どおりに"
                            "生成します。オフ: モデルの自由な出力を読み取ります（元の実験の方法）。"),
    "pick": ("Pick the next round's question", "次のラウンドの質問を選ぶ"),
    "raw_questions": ("The model's raw text", "モデルの出力（そのまま）"),
    "own_question": ("Your question: the picked one, to edit and replace, or a new one to add",
                     "自分の質問: 選んだ質問を編集して置き換え、または新しい質問を書いて追加"),
    "add_question": ("Add as a question ＋", "質問として追加 ＋"),
    "replace_question": ("Replace the picked one ✎", "選んだ質問を置き換え ✎"),
    "next_round": ("Next round ⇢", "次のラウンド ⇢"),
    "rounds_n": ("Rounds", "ラウンド数"),
    "run_rounds": ("Run N rounds ▶▶", "Nラウンド実行 ▶▶"),
    "transcript": ("Transcript", "記録"),
    "export_debate": ("Export XLSX, CSV, JSONL", "XLSX・CSV・JSONLに書き出す"),
    "import_debate": ("Import a debate (.xlsx, .csv, .jsonl)", "討論を読み込む（.xlsx・.csv・.jsonl）"),
    "clear_debate": ("Clear debate…", "討論を消去…"),
    "really_clear_debate": ("Really clear this debate?", "本当にこの討論を消去しますか？"),
}
_JA_SETTING_INFO = {
    "max_new_tokens": "段階ごと: 推論と回答がそれぞれこのトークン数まで",
    "temperature": "0 = 貪欲法: 同じ入力なら同じ出力。回答の変化は偶然ではなく編集によるもの",
    "top_k": "0 = 無効",
    "seed": "-1 = 実行ごとに新しいランダムなシード",
}
for _name, _b in GENERATION_BOUNDS.items():
    _en, _, _ja = _b.label.partition(" / ")
    TEXTS[f"setting.{_name}"] = (_en, _ja or _en)
    if _b.info:
        TEXTS[f"setting_info.{_name}"] = (_b.info, _JA_SETTING_INFO.get(_name, _b.info))
for _item in interventions():
    TEXTS[f"intervention.{_item.id}"] = (_item.label_en, _item.label_ja)

I18N = gr.I18n(en={k: en for k, (en, _) in TEXTS.items()}, ja={k: ja for k, (_, ja) in TEXTS.items()})
t = I18N  # t("key"): a label the browser translates

MODE_CHOICES = [(t("mode_reasoning"), "reasoning"), (t("mode_special"), "special"),
                (t("mode_vanilla"), "vanilla")]
assert sorted(v for _, v in MODE_CHOICES) == sorted(MODES)

