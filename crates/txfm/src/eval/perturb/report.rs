//! JSON and Markdown output.
