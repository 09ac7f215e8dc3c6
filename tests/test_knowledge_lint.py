"""The knowledge lint (bot/knowledge_lint.py) and the intent lists it keeps in step."""

from __future__ import annotations

import re
import shutil

from bot.knowledge import load_knowledge
from bot.knowledge_lint import domain_topic_intents, intent_disagreements, lint_knowledge, rule_topic_intents
from bot.paths import KNOWLEDGE_DIR
from bot.shingles import read_hashes


def test_topic_rules_knowledge_intents_and_domain_topic_intents_agree():
    domain = domain_topic_intents()
    assert domain, "domain.yml lists no ask_* intents"
    assert rule_topic_intents() == domain
    assert load_knowledge().intents == domain


def test_the_knowledge_base_passes_its_own_lint():
    report = lint_knowledge(read_hashes())
    assert not report.problems, report.problems


def test_intent_disagreements_name_the_list_that_differs():
    problems = intent_disagreements(knowledge=["ask_a", "ask_b"], domain=["ask_a", "ask_b"], rules=["ask_a", "ask_c"])
    assert problems == ["topic intents without topic rules: ['ask_b']",
                        "topic rules name intents that are not domain topic intents: ['ask_c']"]


def test_the_lint_reports_wording_problems(tmp_path):
    topics = tmp_path / "topics"
    shutil.copytree(KNOWLEDGE_DIR / "topics", topics)
    path = topics / "about.yml"
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(r'sms: ".*"', 'sms: "- A bullet with {clinic_fax} in it."', text, count=1),
                    encoding="utf-8")
    problems = lint_knowledge(read_hashes(), topics_dir=topics).problems
    assert any("unknown placeholder {clinic_fax}" in problem for problem in problems)
    assert any("sms must be one plain paragraph" in problem for problem in problems)
