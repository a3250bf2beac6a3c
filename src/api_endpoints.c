/* api_endpoints: not written yet */
