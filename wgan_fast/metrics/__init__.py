"""Sample-quality metrics: FID, KID, precision/recall and Inception Score on
feature arrays, and the Inception network that makes the features.

    from wgan_fast import metrics
    fid = metrics.fid_from_features(f_real, f_fake)
"""
from .frechet import feature_stats, fid_from_features, frechet_distance
from .inception_score import inception_score
from .kid import kid_from_features
from .knn_manifolds import precision_recall

__all__ = ["feature_stats", "frechet_distance", "fid_from_features", "kid_from_features", "precision_recall",
           "inception_score"]
