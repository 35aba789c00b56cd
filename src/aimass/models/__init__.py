"""Model families and safe loading of Hugging Face directories (nothing downloads)."""
