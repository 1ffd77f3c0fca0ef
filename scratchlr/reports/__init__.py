"""What a trained model is judged and shown by: the evaluation report and the pictures."""
