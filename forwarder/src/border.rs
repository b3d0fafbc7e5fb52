//! Border role: RFC 8754 End processing in userspace. (Being written: issue 4.)
