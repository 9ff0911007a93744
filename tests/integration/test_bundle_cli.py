def test_placeholder():\n    pass
