"""Files an operator writes, read for every layer that needs them: quota files
(``allot.config.quotas``) and the line-aware YAML reader they are built on
(``allot.config.yamldoc``). Bad input raises ``ConfigError`` naming the file, line and field.

The simulator, the server and the CLI all read these files; none of them owns the format.
"""
