//! Per-sample metadata (AnnData's `obs`): a table of typed columns, one value per sample.

/// One `obs` column. Categorical columns keep their codes (`-1` = missing, as in AnnData).
#[derive(Debug, Clone, PartialEq)]
pub enum ObsColumn {
    Categorical { codes: Vec<i32>, categories: Vec<String> },
    Str(Vec<String>),
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

impl ObsColumn {
    pub fn len(&self) -> usize {
        match self {
            ObsColumn::Categorical { codes, .. } => codes.len(),
            ObsColumn::Str(v) => v.len(),
            ObsColumn::Float(v) => v.len(),
            ObsColumn::Int(v) => v.len(),
            ObsColumn::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of sample `i` as text (`None` for a missing categorical value).
    pub fn get_str(&self, i: usize) -> Option<String> {
        match self {
            ObsColumn::Categorical { codes, categories } => {
                usize::try_from(codes[i]).ok().map(|c| categories[c].clone())
            }
            ObsColumn::Str(v) => Some(v[i].clone()),
            ObsColumn::Float(v) => Some(v[i].to_string()),
            ObsColumn::Int(v) => Some(v[i].to_string()),
            ObsColumn::Bool(v) => Some(v[i].to_string()),
        }
    }

    /// Rows `idx` of this column, in that order.
    pub fn take(&self, idx: &[usize]) -> ObsColumn {
        match self {
            ObsColumn::Categorical { codes, categories } => ObsColumn::Categorical {
                codes: idx.iter().map(|&i| codes[i]).collect(),
                categories: categories.clone(),
            },
            ObsColumn::Str(v) => ObsColumn::Str(idx.iter().map(|&i| v[i].clone()).collect()),
            ObsColumn::Float(v) => ObsColumn::Float(idx.iter().map(|&i| v[i]).collect()),
            ObsColumn::Int(v) => ObsColumn::Int(idx.iter().map(|&i| v[i]).collect()),
            ObsColumn::Bool(v) => ObsColumn::Bool(idx.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// `obs`: sample names plus named columns, all of length `n_obs`, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObsFrame {
    pub names: Vec<String>,
    pub columns: Vec<(String, ObsColumn)>,
}

impl ObsFrame {
    pub fn n_obs(&self) -> usize {
        self.names.len()
    }

    pub fn column(&self, key: &str) -> Option<&ObsColumn> {
        self.columns.iter().find(|(k, _)| k == key).map(|(_, c)| c)
    }

    pub fn keys(&self) -> Vec<&str> {
        self.columns.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// Column `key` as codes in first-seen order and the labels they index; a missing column or
    /// value is an error naming `path` (the file the frame came from).
    pub fn codes(&self, key: &str, path: &std::path::Path) -> crate::Result<(Vec<u32>, Vec<String>)> {
        use crate::Error;
        let col = self
            .column(key)
            .ok_or_else(|| Error::format(path, format!("obs has no column `{key}`; columns: {}", self.keys().join(", "))))?;
        let values = (0..self.n_obs())
            .map(|i| col.get_str(i).ok_or_else(|| Error::format(path, format!("obs['{key}'] is missing for cell {} ({})", i, self.names[i]))))
            .collect::<crate::Result<Vec<String>>>()?;
        Ok(first_seen_codes(&values))
    }

    /// Rows `idx` of the frame, in that order.
    pub fn take(&self, idx: &[usize]) -> ObsFrame {
        ObsFrame {
            names: idx.iter().map(|&i| self.names[i].clone()).collect(),
            columns: self.columns.iter().map(|(k, c)| (k.clone(), c.take(idx))).collect(),
        }
    }
}

/// Codes of `values` in first-seen order, and the names they index.
pub fn first_seen_codes(values: &[String]) -> (Vec<u32>, Vec<String>) {
    let mut index: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let mut names = Vec::new();
    let codes = values
        .iter()
        .map(|v| {
            *index.entry(v.as_str()).or_insert_with(|| {
                names.push(v.clone());
                names.len() as u32 - 1
            })
        })
        .collect();
    (codes, names)
}
