//! knn: weighted kNN classification.
