"""The attacks as tests: one place that proves each refusal.

Each row of ``field-notes.md`` section 5 ("Security failures to design against") and
each finding of issue 13 has its test here. A test runs the real attack against the
real code (an app in process, a ``aimass serve`` process, the readers and loaders),
and checks the refusal and that nothing happened: marker files a payload would create
are absent, canary files outside a root are unchanged, nothing was stored or read.

================================================  =========================================
Attack (field notes section 5)                    Test (``tests/security/...``)
================================================  =========================================
1. Arbitrary file read via a crafted source /     test_path_traversal.py: base import from
   URI (MLflow CVE-2023-1177, -2356, -2780:       crafted ``source``/``path``; versions
   ``\\..\\``), canary above the store            registered with a crafted URI; keys and
                                                  URIs in every encoding; canaries checked
2. Absolute paths, double/triple-encoded          test_path_traversal.py::
   ``%252E%252E%252F``, ``#``/``?`` tricks,       test_get_put_delete_with_encoded_
   deletion (CVE-2023-3765, -6831, 2024-1560,     traversals_touch_nothing_outside,
   -1483, -3848)                                  test_keys_that_could_escape_the_root...,
                                                  test_symlinked_artifacts_are_not_followed
3. Deserialization on load (MLflow                test_deserialization.py: bundle allow-
   CVE-2024-37052..37060)                         list; pickles raw/gzip/zip/torch.save/
                                                  broken/7z as .bin/.pt/.pkl/.joblib refused
                                                  in a fresh interpreter, marker absent
4. SSRF, URL registration, 0.0.0.0, SnakeYAML     test_ssrf_and_binding.py: loopback bind
   (TorchServe ShellTorch CVE-2023-43654,         (the listening socket of a real
   CVE-2022-1471, CVE-2024-35198)                 ``aimass serve``); no import from any URL
                                                  (a loopback listener sees no request);
                                                  ``yaml.safe_load`` only
5. Open job API / no auth, DNS rebinding, CORS    test_auth_surface.py: route table
   (Ray ShadowRay CVE-2023-48022,                 enumerated, every route but the public
   CVE-2025-62593)                                ones 401; no command/entrypoint/URL field;
                                                  foreign Host/Origin 403; CORS never ``*``
6. ``torch.load(weights_only=True)`` bypass       test_deserialization.py: checkpoints
   (CVE-2025-32434, CVE-2026-24747)               parsed, never unpickled; no unpickler in
                                                  the source; torch >= 2.10; every
                                                  ``from_pretrained`` without remote code
7. Pickles on hubs, scanner bypasses (nullifAI)   test_deserialization.py::test_pickled_
                                                  weights_in_every_wrapping..., test_the_
                                                  checkpoint_parser_refuses_every_wrapping
8. Pickle request bodies (BentoML                 test_deserialization.py::test_pickle_and_
   CVE-2025-27520, -32375), newline injection     other_non_json_bodies_are_refused_on_
                                                  every_route (415, marker absent),
                                                  test_names_holding_a_newline_are_refused
9. Default credentials / auth off by default      test_auth_surface.py::test_no_well_known_
                                                  default_credential_opens_anything,
                                                  test_first_start_makes_a_random_admin_key
================================================  =========================================

================================================  =========================================
Issue 13 finding                                  Test (``tests/security/...``)
================================================  =========================================
1. Work before authentication (anonymous          test_request_limits.py: anonymous
   malformed JSON was 400; 30 MB anonymous        malformed JSON / wrong keys 401; a 30 MB
   bodies were read whole)                        anonymous body refused with 0 bytes read;
                                                  streaming 413; small limit on public paths
2. No limits on guessing or load                  test_guessing.py: 429 + ``Retry-After``
                                                  per address and per key id, one audit row
                                                  per decision (200 wrong keys: 10 rows +
                                                  1); rate, stream and job quotas:
                                                  tests/server/test_limits.py
3. Tokenizing on the event loop                   test_request_limits.py: characters capped
                                                  (413) before tokenizing; ``/healthz``
                                                  answers while a call is tokenized
4. Decompression bombs (Parquet/CSV/JSONL)        test_bombs.py: footer sizes and bounded
                                                  batches, row-count bomb, text formats by
                                                  size, 413 over the API storing nothing
5. ``/metrics`` names tenants                     test_tenancy.py::test_anonymous_metrics_
                                                  carry_no_tenant_labels (and 404-not-403)
6. Lone UTF-16 surrogate is a 500; 500s logged    test_text_hygiene.py: 400
   without traceback                              INVALID_ARGUMENT naming input and
                                                  position, in bodies, rows and files; a
                                                  500 logged with traceback and request id
7. ``aimass.db`` 0644, ``artifacts/`` 0755        test_file_modes.py: files 0600, dirs 0700
                                                  under umask 022, in a served home
(query budgets) extraction by many queries        test_extraction.py
(metrics token) ``/metrics`` beyond loopback      test_metrics_token.py
(TLS) plain HTTP beyond loopback                  test_tls.py
(encryption and signatures at rest)               test_at_rest.py
================================================  =========================================
"""
