"""Sample-quality metrics: FID, KID, precision/recall and Inception Score on
feature arrays; the Inception network that makes the features; the
Evaluator that scores a run's samples against its dataset's reference set;
and what synthetic data is worth: classification accuracy score,
augmentation gain, memorization. See docs/evaluation.md.

    from wgan_fast import metrics
    fid = metrics.fid_from_features(f_real, f_fake)
    features = metrics.InceptionFeatures()(images)  # (N, 2048) float64
    metrics.memorization(generated, train_images, features="classifier")  # {"authenticity": ..., "copying_z": ...}
"""
from .augmentation import augmentation_gain
from .cas import Budget, classification_accuracy_score
from .evaluator import METRICS, Evaluator
from .frechet import feature_stats, fid_from_features, frechet_distance
from .inception import InceptionFeatures
from .inception_score import inception_score
from .kid import kid_from_features
from .knn_manifolds import nearest_neighbours, precision_recall
from .copying import memorization

__all__ = ["feature_stats", "frechet_distance", "fid_from_features", "kid_from_features", "precision_recall",
           "inception_score", "InceptionFeatures", "Evaluator", "METRICS", "nearest_neighbours",
           "classification_accuracy_score", "Budget", "augmentation_gain", "memorization"]
