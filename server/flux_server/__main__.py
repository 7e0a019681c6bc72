"""`python -m flux_server`: serve on 0.0.0.0:$PORT, load the model in the background."""

from flux_server.main import main

if __name__ == "__main__":
    main()
