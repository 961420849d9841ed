"""Helpers the tests share: real service processes, the fake OpenAI server, test servers."""
