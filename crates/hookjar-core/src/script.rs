//! The mock receiver's script language (issue #3). Owned by the mock receiver work.
