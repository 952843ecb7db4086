//! Reading back reports whose undefined values were written as JSON `null`: serde_json writes a
//! NaN `f64` as `null` but refuses `null` for an `f64` on the way in. Fields tagged
//! `#[serde(deserialize_with = "crate::eval::serde_nan::f64_or_nan")]` read `null` as NaN.

use serde::{Deserialize, Deserializer};

pub fn f64_or_nan<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    struct S {
        #[serde(deserialize_with = "super::f64_or_nan")]
        v: f64,
    }

    #[test]
    fn nan_survives_a_json_round_trip() {
        let text = serde_json::to_string(&S { v: f64::NAN }).unwrap();
        assert_eq!(text, r#"{"v":null}"#);
        assert!(serde_json::from_str::<S>(&text).unwrap().v.is_nan());
        assert_eq!(serde_json::from_str::<S>(r#"{"v":2.5}"#).unwrap().v, 2.5);
    }
}
