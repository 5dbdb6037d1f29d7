"""Builders that turn raw public ECG downloads into ``datasets.DatasetDict`` objects."""
