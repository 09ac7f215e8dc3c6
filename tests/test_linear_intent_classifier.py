"""LinearIntentClassifier on its own, in the style of RasaHQ/rasa-3.x-component-examples.

Trains, persists, loads and processes with a real LocalModelStorage and Resource in a temporary
directory, so the save/load round trip Rasa relies on is checked without `rasa train`. The feature
blocks are TF-IDF only here (`embedding_weight: 0`): seconds, and no sentence-encoder files needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bot.components.linear_intent_classifier import INTENT_RANKING_KEY, MODEL_FILE, LinearIntentClassifier

CONFIG = {"embedding_weight": 0.0}
EXAMPLES = {
    "ask_driving": ["can i drive home after", "do i need a driver", "will someone have to take me home",
                    "can i take a taxi home", "am i allowed to drive myself"],
    "ask_bandages": ["when can the bandage come off", "can i shower with the bandage", "how do i keep the site clean",
                     "can i take a bath after", "when do i remove the dressing"],
    "ask_pregnancy": ["what if i am pregnant", "i might be pregnant is that a problem", "can i have it while pregnant",
                      "should i tell them i could be pregnant", "is it safe in pregnancy"],
}


def training_data(examples: dict[str, list[str]]) -> TrainingData:
    return TrainingData([Message(data={TEXT: text, INTENT: intent}) for intent, texts in examples.items() for text in texts])


def message(text: str | None) -> Message:
    return Message(data={TEXT: text} if text is not None else {})


@pytest.fixture()
def model_storage(tmp_path: Path) -> LocalModelStorage:
    return LocalModelStorage(tmp_path)


@pytest.fixture()
def resource() -> Resource:
    return Resource("linear_intent_classifier")


@pytest.fixture()
def execution_context(resource: Resource) -> ExecutionContext:
    return ExecutionContext(GraphSchema({}), node_name=resource.name)


@pytest.fixture()
def trained(model_storage, resource, execution_context) -> LinearIntentClassifier:
    classifier = LinearIntentClassifier.create(CONFIG, model_storage, resource, execution_context)
    classifier.train(training_data(EXAMPLES))
    return classifier


def load(model_storage, resource, execution_context) -> LinearIntentClassifier:
    return LinearIntentClassifier.load(CONFIG, model_storage, resource, execution_context)


def test_train_persists_the_pipeline_in_the_resource(trained, model_storage, resource):
    with model_storage.read_from(resource) as directory:
        assert (directory / MODEL_FILE).is_file()


def test_process_sets_the_intent_and_a_ranking_best_first(trained):
    [processed] = trained.process([message("is it ok to drive myself home")])
    intent = processed.get(INTENT)
    ranking = processed.get(INTENT_RANKING_KEY)
    assert intent[INTENT_NAME_KEY] == "ask_driving"
    assert ranking[0] == intent
    assert {entry[INTENT_NAME_KEY] for entry in ranking} == set(EXAMPLES)
    confidences = [entry[PREDICTED_CONFIDENCE_KEY] for entry in ranking]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0)


def test_a_loaded_classifier_ranks_exactly_like_the_trained_one(trained, model_storage, resource, execution_context):
    texts = ["can the dressing get wet", "could being pregnant matter", "who takes me home", "hello"]
    loaded = load(model_storage, resource, execution_context)
    for text in texts:
        assert loaded.process([message(text)])[0].get(INTENT_RANKING_KEY) == trained.rank(text)


def test_ranking_length_limits_the_ranking(model_storage, resource):
    classifier = LinearIntentClassifier({**CONFIG, "ranking_length": 2}, model_storage, resource)
    classifier.train(training_data(EXAMPLES))
    [processed] = classifier.process([message("when does the bandage come off")])
    assert len(processed.get(INTENT_RANKING_KEY)) == 2
    assert processed.get(INTENT)[INTENT_NAME_KEY] == "ask_bandages"


@pytest.mark.parametrize("text", [None, "", "   "])
def test_a_message_without_text_gets_no_intent(trained, text):
    [processed] = trained.process([message(text)])
    assert processed.get(INTENT) == {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}
    assert processed.get(INTENT_RANKING_KEY) == []


def test_an_untrained_resource_loads_and_predicts_nothing(model_storage, resource, execution_context):
    """A core-only model has no NLU weights: the component loads and leaves every intent empty."""
    loaded = load(model_storage, resource, execution_context)
    assert loaded.pipeline is None
    [processed] = loaded.process([message("can i drive home")])
    assert processed.get(INTENT)[INTENT_NAME_KEY] is None


def test_training_needs_at_least_two_intents(model_storage, resource):
    classifier = LinearIntentClassifier(CONFIG, model_storage, resource)
    with pytest.raises(ValueError, match="two intents"):
        classifier.train(training_data({"ask_driving": EXAMPLES["ask_driving"]}))


def test_with_the_sentence_embedding_a_paraphrase_without_shared_words_is_understood(
    model_storage, resource, execution_context
):
    """The embedding block carries meaning the TF-IDF blocks cannot: no word of the query is in the data."""
    with_embedding = LinearIntentClassifier.create({"embedding_weight": 1.0}, model_storage, resource, execution_context)
    with_embedding.train(training_data(EXAMPLES))
    assert with_embedding.rank("expecting a baby soon")[0][INTENT_NAME_KEY] == "ask_pregnancy"
    loaded = LinearIntentClassifier.load({"embedding_weight": 1.0}, model_storage, resource, execution_context)
    assert loaded.rank("expecting a baby soon") == with_embedding.rank("expecting a baby soon")


@pytest.mark.parametrize("embedding_weight", [0.0, 1.0])
def test_margins_are_the_pipelines_decision_function(model_storage, resource, execution_context, embedding_weight):
    """`margins` skips sklearn's FeatureUnion for speed; it must give the pipeline's own numbers."""
    import numpy as np

    config = {"embedding_weight": embedding_weight}
    classifier = LinearIntentClassifier.create(config, model_storage, resource, execution_context)
    classifier.train(training_data(EXAMPLES))
    texts = [text for examples in EXAMPLES.values() for text in examples]
    texts += ["", "🙂", "¿puedo manejar?", "DRIVE?!", "x" * 2500, "expecting a baby soon", "bath bandage driver"]
    for text in texts:
        expected = classifier.pipeline.decision_function([text])[0]
        assert np.abs(classifier.margins(text) - expected).max() < 1e-9, text
    classifier.train(training_data({**EXAMPLES, "ask_risks": ["what are the risks", "is it dangerous"]}))
    assert classifier.margins("is it risky").shape == (4,)  # retraining forgets the old blocks
