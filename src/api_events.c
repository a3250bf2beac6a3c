/* api_events: not written yet */
