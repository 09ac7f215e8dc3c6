"""ConText for triage: which cues reach a symptom mention, and whether the mention then counts.

Cues (negated, hypothetical, historical, someone else's, expected ...) come from the rules file's
``context`` section and run in medspaCy's ConText matcher; ``modifiers_per_mention`` applies them with three
changes from medspaCy's own component (see its docstring), and ``mention_status`` decides.
"""

from __future__ import annotations

from pathlib import Path

from bot.triage.matchers import FLAG_ATTRS, spacy_patterns
from bot.triage.rules import TriageRules

FIRST_PERSON = frozenset({"i", "my", "me", "myself", "mine", "im", "mi", "mis", "yo", "meu", "minha", "moi"})
# "my", or "I" + a verb of reporting: what makes a question about a symptom a report about oneself
# ("is numbness in my groin normal?", "i have chest pain, do i call?"); "do i call 911 for chest pain?" is not.
FIRST_PERSON_REPORT = frozenset({"my", "me", "myself", "mine"})
# Present tense next to a symptom of another adult: a caregiver reporting now ("my wife can't move her arm",
# "my husband is slurring"), unlike "my mom had a headache after hers".
NEGATION_WORDS = frozenset({"not", "no", "never", "without", "nor", "neither", "nothing"})
PRESENT_TENSE = frozenset({"is", "are", "am", "has", "s", "keeps", "keep", "can", "will", "does", "seems", "looks", "feels",
                           "sounds", "'s", "'re", "isnt", "cant", "wont", "doesnt",  # "s": spaCy splits "hes" into "he" "s"
                           # Spanish / Portuguese present tense (accents dropped): "mi esposo esta ...", "no puede"
                           "esta", "estan", "tiene", "tienen", "sigue", "puede", "parece", "cuesta", "duele", "siente",
                           "tem", "pode"})
FIRST_PERSON_VERBS = frozenset({"am", "have", "has", "had", "feel", "felt", "got", "was", "keep", "kept", "can", "could",
                                "think", "woke", "just", "still", "started", "noticed", "noticing", "get", "been", "'m",
                                "'ve", "seem", "cant", "can't"})


def build_context_matcher(nlp, rules: TriageRules, which: str = "project"):
    """medspaCy ConText rules in a MedspacyMatcher (phrases -> PhraseMatcher, patterns -> Matcher)."""
    from medspacy.common.medspacy_matcher import MedspacyMatcher
    from medspacy.context import ConTextRule

    # prune=False: overlapping cues are resolved in modifiers_per_mention (only cues inside a longer cue are dropped)
    matcher = MedspacyMatcher(nlp, name="triage_context", phrase_matcher_attr="LOWER", prune=False)
    if which == "medspacy_default":  # only for measuring: the VA clinical-note rules shipped with medspaCy
        import medspacy.context.context as context_module

        default = Path(context_module.__file__).resolve().parents[2] / "resources" / "en" / "context_rules.json"
        matcher.add(ConTextRule.from_json(str(default)))
        return matcher
    context_rules = []
    for index, group in enumerate(rules.context):
        allowed = {r.upper() for r in group.applies_to} if group.applies_to else None
        excluded = {r.upper() for r in group.not_for} if group.not_for else None
        options = dict(category=group.category, direction=group.direction, max_scope=group.max_words,
                       terminated_by=set(group.stops_at) or None, allowed_types=allowed, excluded_types=excluded)
        for phrase in group.phrases:
            plain = all(e.kind == "words" and not e.optional and len(e.alternatives) == 1 for e in phrase.elements)
            if plain:
                words = " ".join(w for e in phrase.elements for w, _ in e.alternatives[0])
                context_rules.append(ConTextRule(literal=words, **options))
            else:
                where = (None, f"context[{index}] {phrase.source}")
                for token_pattern in spacy_patterns(phrase.elements, rules.path, where):
                    context_rules.append(ConTextRule(literal=phrase.source, pattern=token_pattern, **options))
    matcher.add(context_rules)
    return matcher


def modifiers_per_mention(matcher, doc, targets: list) -> list[list]:
    """The ConText modifiers (cues) that reach each target.

    medspaCy's ConText algorithm: ConTextRule matches become ConTextModifiers with a scope (direction,
    max_scope, sentence); a modifier's scope is cut where a cue of a category in its ``terminated_by``
    (or of its own category) begins; a target within a scope gets the modifier. Three changes:
    * overlaps are tested correctly (medspaCy 1.3.1's ``tuple_overlaps`` misses a span that contains
      the other, so a sentence-wide clause break never cut a negation with a max_scope);
    * a cue lying inside a longer cue or inside a symptom mention is dropped ("if" in "not sure if",
      "not" in "can not move my foot"), and only those: overlapping cues are both kept;
    * a cue that reaches into a mention applies to it ("is fever normal"), except a negation that
      only partly overlaps one ("do not have any feeling in my groin" keeps its own negation).
    Results are kept per mention (spaCy 3.4 keys span extensions by character offsets only).
    """
    from medspacy.context.context_modifier import ConTextModifier

    rule_map = matcher.rule_map
    matches = sorted(set(matcher(doc)), key=lambda m: (m[1], -m[2]))
    spans = [(start, end) for _, start, end in matches]
    modifiers = []
    for match_id, start, end in matches:
        if any(s <= start and end <= e and (s, e) != (start, end) for s, e in spans):
            continue
        if any(t.start <= start and end <= t.end and (t.start, t.end) != (start, end) for t in targets):
            continue
        modifiers.append(ConTextModifier(rule_map[doc.vocab.strings[match_id]], start, end, doc))
    per_target: list[list] = [[] for _ in targets]
    if not modifiers:
        return per_target

    def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return a[0] < b[1] and b[0] < a[1]

    scopes = {id(m): list(m.scope_span) for m in modifiers}
    for m in modifiers:
        if m.direction in ("TERMINATE", "PSEUDO"):
            continue
        scope = scopes[id(m)]
        m_start, m_end = m.modifier_span
        for other in modifiers:
            if other is m:
                continue
            o_start, o_end = other.modifier_span
            if not (other.direction == "TERMINATE" or other.category in m.rule.terminated_by
                    or other.category == m.category):
                continue
            if other.category == m.category and (m.allowed_types != other.allowed_types
                                                 or m.excluded_types != other.excluded_types):
                continue
            if m.direction in ("FORWARD", "BIDIRECTIONAL") and o_start >= m_end:
                scope[1] = min(scope[1], o_start)
            if m.direction in ("BACKWARD", "BIDIRECTIONAL") and o_end <= m_start:
                scope[0] = max(scope[0], o_end)
    for m in modifiers:
        if m.direction in ("TERMINATE", "PSEUDO"):
            continue
        scope = tuple(scopes[id(m)])
        m_span = m.modifier_span
        for i, target in enumerate(targets):
            if not m.allows(target.label_.upper()):
                continue
            t_span = (target.start, target.end)
            if overlap(m_span, t_span):
                contains = m_span[0] <= t_span[0] and t_span[1] <= m_span[1]
                # a negation that starts before the mention and runs into it ("do not have a temperature"),
                # unless the mention itself holds the negation ("do not have any feeling in my legs")
                leads_in = m_span[0] < t_span[0] and not any(
                    token.lower_ in NEGATION_WORDS for token in target.doc[t_span[0]:min(t_span[1], m_span[1])]
                )
                if contains or leads_in or m.category != "NEGATED_EXISTENCE":
                    per_target[i].append(m)
            elif scope[0] < scope[1] and overlap(scope, t_span):
                per_target[i].append(m)
    return per_target


# Signs that need care even when they have passed: a close relative's report of one "after her injection"
# is read as a carer telling us about today, even in the past tense ("my husband collapsed after his shot").
CARER_REPORT_RULES = frozenset({"fainting", "stroke_signs", "bladder_bowel"})
CLOSE_FAMILY = frozenset({"husband", "wife", "partner", "mum", "mom", "mother", "dad", "father", "son", "daughter",
                          "mama", "papa", "esposo", "esposa", "hijo", "hija"})


def carer_report(target) -> bool:
    if target.label_.lower() not in CARER_REPORT_RULES:
        return False
    words = [token.lower_ for token in target.doc[target.start].sent]
    after_their_shot = any(
        word == "after" and any(later in ("his", "her", "their") for later in words[i + 1:i + 3])
        for i, word in enumerate(words)
    )
    return after_their_shot and any(word in CLOSE_FAMILY for word in words)


def is_present_tense(doc, i: int) -> bool:
    """A present-tense verb; "'s" only after a pronoun ("he's drowsy", not "my friend's neighbour")."""
    word = doc[i].lower_
    if word in ("'s", "s"):
        return i > 0 and doc[i - 1].lower_ in {"he", "she", "it", "that", "there", "who"}
    return word in PRESENT_TENSE


def mention_status(target, modifiers: list) -> tuple[str, tuple[str, ...]]:
    """Whether a mention counts, from the context cues that reach it. When in doubt it counts."""
    doc = target.doc
    categories = {m.category for m in modifiers}
    cue_texts = tuple(f"{m.category}:{doc[m.modifier_span[0]:m.modifier_span[1]].text}" for m in modifiers)
    strong = "CURRENT" in categories
    recent = strong or "RECENT" in categories
    # "a day after" dates a mention relative to a shot: it makes an old-sounding mention current, but it does
    # not make someone else's story ("my friend went numb a day after her shot") the patient's own.
    dated = recent or "RELATIVE_TIME" in categories
    if "NEGATED_EXISTENCE" in categories:
        return "negated", cue_texts
    if "LOW_TEMPERATURE" in categories and not any(t._.get(FLAG_ATTRS["fever_temp"]) for t in target):
        return "negated", cue_texts
    if "CHRONIC" in categories and "CHANGE" not in categories:
        # there for months, the reason for the shot ("my legs have been weak for months from stenosis")
        return "chronic", cue_texts
    if "EXPECTED" in categories and "LONG_DURATION" not in categories:
        return "expected", cue_texts
    if "RESOLVED" in categories and not strong:
        return "resolved", cue_texts
    if "HYPOTHETICAL" in categories and not strong:
        return "hypothetical", cue_texts
    if "GENERIC_QUESTION" in categories and not strong:
        # "is a fever normal after?" is a general question; "is numbness in my groin normal?" is a report.
        sentence = doc[target.start].sent
        family = {i for m in modifiers if m.category == "FAMILY" for i in range(*m.modifier_span)}
        reports = any(
            t.i not in family and (t.lower_ in FIRST_PERSON_REPORT or (
                t.lower_ == "i" and t.i + 1 < sentence.end and doc[t.i + 1].lower_ in FIRST_PERSON_VERBS))
            for t in sentence
        )
        if not reports:
            return "hypothetical", cue_texts
    if "HISTORICAL" in categories and not dated:
        return "historical", cue_texts
    if categories & {"FAMILY", "NOT_PATIENT"} and not recent:
        others = {i for m in modifiers if m.category in {"FAMILY", "NOT_PATIENT"} for i in range(*m.modifier_span)}
        sentence = doc[target.start].sent
        window = range(max(sentence.start, target.start - 6), min(sentence.end, target.end + 2))
        mine = any(doc[i].lower_ in FIRST_PERSON and i not in others for i in range(max(0, target.start - 3), target.end))
        present = any(is_present_tense(doc, i) and i not in others for i in window)
        if not mine and ("NOT_PATIENT" in categories or not present) and not carer_report(target):
            return "other_person", cue_texts
    return "asserted", cue_texts

