//! Gene-relationship recall from model parameters (`txfm bench genes`).
