"""NLU component: intent classifier on TF-IDF word + character n-grams and sentence embeddings, linear SVM.

Chosen by measurement (README, "NLU pipeline"): more accurate than DIET on our short patient
messages, trains in seconds and is deterministic. Character n-grams make it robust to typos and
SMS spelling ("b4", "numbnes"); the all-MiniLM-L6-v2 sentence embedding (bot/sentence_encoder.py)
carries meaning across words the training data never used ("who takes me home" ~ "driver").
Confidences are a softmax over the SVM margins, sharpened by `margin_scale`, so
FallbackClassifier's threshold can turn low-margin guesses into `nlu_fallback`.
"""

from __future__ import annotations

from typing import Any

import joblib
import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline, make_union
from sklearn.svm import LinearSVC

from bot.sentence_encoder import sentence_encoder

MODEL_FILE = "linear_intent_classifier.joblib"
INTENT_RANKING_KEY = "intent_ranking"
MAX_CHARS = 2_000  # longer messages are classified on their start; triage still scans everything


def _lowercase(text: str) -> str:
    return text.lower()


class SentenceEmbeddings(BaseEstimator, TransformerMixin):
    """Scaled sentence embeddings as a feature block; holds no weights, so the pickle stays small."""

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def fit(self, texts: list[str], labels: Any = None) -> SentenceEmbeddings:
        return self

    def transform(self, texts: list[str]) -> np.ndarray:
        return sentence_encoder().encode([text[:MAX_CHARS] for text in texts]) * self.weight


def build_pipeline(config: dict[str, Any]) -> Pipeline:
    blocks = [
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, preprocessor=_lowercase),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, preprocessor=_lowercase),
    ]
    if config["embedding_weight"] > 0:
        blocks.append(SentenceEmbeddings(config["embedding_weight"]))
    features = make_union(*blocks)
    return make_pipeline(features, LinearSVC(C=config["C"], random_state=config["random_state"]))


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"C": 1.0, "margin_scale": 8.0, "ranking_length": 10, "random_state": 42, "embedding_weight": 1.0}

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 pipeline: Pipeline | None = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.pipeline = pipeline
        self._blocks: tuple[list[tuple[Any, np.ndarray]], np.ndarray] | None = None  # margins(), built on first use
        if pipeline is not None and self.config["embedding_weight"] > 0:
            sentence_encoder()  # load the weights now: the first patient is not the slow one, a missing model fails at start

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> LinearIntentClassifier:
        return cls(config, model_storage, resource)

    def train(self, training_data: TrainingData) -> Resource:
        examples = [m for m in training_data.intent_examples if m.get(TEXT) and m.get(INTENT)]
        if len({m.get(INTENT) for m in examples}) < 2:
            raise ValueError("LinearIntentClassifier needs training examples for at least two intents.")
        self.pipeline = build_pipeline(self.config)
        self._blocks = None
        self.pipeline.fit([m.get(TEXT) for m in examples], [m.get(INTENT) for m in examples])
        self.persist()
        return self._resource

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            joblib.dump(self.pipeline, directory / MODEL_FILE)

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> LinearIntentClassifier:
        try:
            with model_storage.read_from(resource) as directory:
                pipeline = joblib.load(directory / MODEL_FILE)
        except ValueError:  # not trained (e.g. core-only model)
            pipeline = None
        return cls(config, model_storage, resource, pipeline)

    def margins(self, text: str) -> np.ndarray:
        """The SVM's margins for one text: `pipeline.decision_function`, one feature block at a time.

        Why: sklearn's FeatureUnion sends each block through joblib and stacks them into one sparse
        matrix, about 2 ms a message, more than the two TF-IDF blocks themselves.
        """
        if self._blocks is None:
            union, svm = self.pipeline.steps[0][1], self.pipeline.steps[-1][1]
            if union.transformer_weights or svm.coef_.ndim != 2:
                raise ValueError("LinearIntentClassifier: unexpected pipeline; retrain the model")
            blocks, start = [], 0
            for _, transformer in union.transformer_list:
                width = transformer.transform([""]).shape[1]
                blocks.append((transformer, np.ascontiguousarray(svm.coef_[:, start:start + width].T)))
                start += width
            if start != svm.coef_.shape[1]:
                raise ValueError("LinearIntentClassifier: feature blocks do not match the SVM; retrain the model")
            self._blocks = (blocks, svm.intercept_)
        blocks, intercept = self._blocks
        margins = intercept.copy()
        for transformer, weights in blocks:
            margins += np.asarray(transformer.transform([text]) @ weights).ravel()
        return margins

    def rank(self, text: str) -> list[dict[str, Any]]:
        """Intents with softmax-over-margin confidences, best first."""
        margins = self.margins(text[:MAX_CHARS])
        scaled = np.exp(self.config["margin_scale"] * (margins - margins.max()))
        confidences = scaled / scaled.sum()
        order = np.argsort(-confidences)[: self.config["ranking_length"]]
        classes = self.pipeline.classes_
        return [{INTENT_NAME_KEY: str(classes[i]), PREDICTED_CONFIDENCE_KEY: float(confidences[i])} for i in order]

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT)
            if self.pipeline is None or not isinstance(text, str) or not text.strip():
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
                message.set(INTENT_RANKING_KEY, [], add_to_output=True)
                continue
            ranking = self.rank(text)
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
        return messages
