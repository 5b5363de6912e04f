//! Flux's object kinds as serde types, read from YAML files, and their validating conversion
//! into domain types.
