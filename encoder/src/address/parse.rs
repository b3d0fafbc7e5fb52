//! The stack-address parser and the character rules of its parts.

use std::net::Ipv6Addr;

use super::{
    AddressError, AddressErrorKind, Hop, HopName, MAX_HOPS, MAX_LABEL_LEN, MAX_NAME_LEN,
    MAX_SERVICE_LEN, Part, SRH_MAX_LEN, ServiceName, StackAddress, may_sit_on, srh_len_for,
};
use crate::layer::Layer;

/// The character starting at byte `at` (which must be a char boundary inside `s`).
fn char_at(s: &str, at: usize) -> char {
    s[at..].chars().next().unwrap_or('\u{fffd}')
}

fn bad_char(s: &str, at: usize, base: usize, part: Part) -> AddressError {
    let ch = char_at(s, at);
    AddressError::new(
        base + at,
        ch.len_utf8(),
        AddressErrorKind::BadChar { ch, part },
    )
}

/// Validates a host name occupying `name` (non-empty); `base` is its offset in the input.
pub(super) fn validate_host_name(name: &str, base: usize) -> Result<(), AddressError> {
    let bytes = name.as_bytes();
    if let Some(i) = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.'))
    {
        return Err(bad_char(name, i, base, Part::HopName));
    }
    let body = name.strip_suffix('.').unwrap_or(name);
    let mut start = 0;
    let mut last = (0, 0);
    for label in body.split('.') {
        let at = base + start;
        if label.is_empty() {
            return Err(AddressError::new(at, 1, AddressErrorKind::EmptyLabel));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(AddressError::new(
                at,
                label.len(),
                AddressErrorKind::LabelTooLong { len: label.len() },
            ));
        }
        check_hyphens(label, at, Part::HopName)?;
        last = (start, label.len());
        start += label.len() + 1;
    }
    if body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // `127.1`, `10.0.0.1` and even `123` are IPv4 addresses to inet_aton.
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::Ipv4Hop,
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::NameTooLong { len: name.len() },
        ));
    }
    let top = &body[last.0..last.0 + last.1];
    if top.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::new(
            base + last.0,
            last.1,
            AddressErrorKind::NumericTopLabel,
        ));
    }
    Ok(())
}

/// Validates a service name occupying `name` (non-empty); `base` is its offset in the input.
pub(super) fn validate_service(name: &str, base: usize) -> Result<(), AddressError> {
    if let Some(i) = name
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'-'))
    {
        return Err(bad_char(name, i, base, Part::Service));
    }
    if let Ok(layer) = name.parse::<Layer>() {
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::ServiceIsLayer { layer },
        ));
    }
    if name.len() > MAX_SERVICE_LEN {
        return Err(AddressError::new(
            base,
            name.len(),
            AddressErrorKind::ServiceTooLong { len: name.len() },
        ));
    }
    check_hyphens(name, base, Part::Service)
}

/// A DNS label may not start or end with `-` (RFC 1123 §2.1), whether in a host name or as
/// a service name.
fn check_hyphens(label: &str, at: usize, part: Part) -> Result<(), AddressError> {
    if label.starts_with('-') || label.ends_with('-') {
        return Err(AddressError::new(
            at,
            label.len(),
            AddressErrorKind::LabelHyphen { part },
        ));
    }
    Ok(())
}

fn is_pchar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b)
}

/// Parses a whole stack address; [`StackAddress::parse`] is the public door.
pub(super) fn stack_address(input: &str) -> Result<StackAddress, AddressError> {
    Parser { input, pos: 0 }.address()
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.pos).copied()
    }

    fn err(&self, at: usize, len: usize, kind: AddressErrorKind) -> AddressError {
        AddressError::new(at, len, kind)
    }

    fn address(mut self) -> Result<StackAddress, AddressError> {
        if self.input.is_empty() {
            return Err(self.err(0, 0, AddressErrorKind::Empty));
        }
        let mut hops = Vec::new();
        let mut hop_spans = Vec::new();
        loop {
            let start = self.pos;
            if hops.len() == MAX_HOPS {
                let rest = &self.input[start..];
                let len = if rest.starts_with('[') {
                    rest.find(']').map(|i| i + 1)
                } else {
                    rest.find(['>', ':'])
                };
                let end = start + len.unwrap_or(rest.len());
                return Err(self.err(
                    start,
                    end - start,
                    AddressErrorKind::TooManyHops { max: MAX_HOPS },
                ));
            }
            hops.push(self.hop()?);
            hop_spans.push((start, self.pos));
            match self.peek() {
                Some(b'>') => self.pos += 1,
                Some(b':') => {
                    self.pos += 1;
                    break;
                }
                // hop() stops only at '>', ':' or the end.
                _ => {
                    return Err(self.err(self.input.len(), 0, AddressErrorKind::MissingColon));
                }
            }
        }
        let (layers, service) = self.layers()?;
        let path = self.path()?;

        let needed = srh_len_for(&hops, layers.len(), service.as_str().len());
        if needed > SRH_MAX_LEN {
            // Point at the first hop whose prefix of the address no longer fits.
            let i = (0..hops.len())
                .find(|&i| {
                    srh_len_for(&hops[..=i], layers.len(), service.as_str().len()) > SRH_MAX_LEN
                })
                .unwrap_or(hops.len() - 1);
            let (at, end) = hop_spans[i];
            return Err(self.err(
                at,
                end - at,
                AddressErrorKind::SrhTooLong {
                    needed,
                    max: SRH_MAX_LEN,
                },
            ));
        }
        Ok(StackAddress {
            hops,
            layers,
            service,
            path,
        })
    }

    fn hop(&mut self) -> Result<Hop, AddressError> {
        let start = self.pos;
        if self.peek() == Some(b'[') {
            return self.literal();
        }
        let rest = &self.input[start..];
        let len = rest.find(['>', ':']).unwrap_or(rest.len());
        let name = &rest[..len];
        // `fd00::1:tcp+x`: the first ':' of a bare IPv6 literal ends the "name" `fd00`.
        let run = rest
            .bytes()
            .take_while(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
            .count();
        let candidate = rest[..run].trim_end_matches(':');
        if candidate.contains("::") || candidate.matches(':').count() >= 2 {
            return Err(self.err(start, candidate.len(), AddressErrorKind::UnbracketedIpv6));
        }
        if name.is_empty() {
            return Err(self.err(start, 0, AddressErrorKind::EmptyHop));
        }
        if start + len == self.input.len() {
            // Validate first, so `a_b` says what is wrong with it rather than "missing ':'".
            validate_host_name(name, start)?;
            return Err(self.err(self.input.len(), 0, AddressErrorKind::MissingColon));
        }
        validate_host_name(name, start)?;
        self.pos += len;
        Ok(Hop::Name(HopName(name.to_ascii_lowercase())))
    }

    fn literal(&mut self) -> Result<Hop, AddressError> {
        let open = self.pos;
        let Some(close) = self.input[open..].find(']').map(|i| open + i) else {
            return Err(self.err(open, 1, AddressErrorKind::UnterminatedBracket));
        };
        let text = &self.input[open + 1..close];
        if let Some(i) = text.find('%') {
            let at = open + 1 + i;
            return Err(self.err(at, close - at, AddressErrorKind::ZoneId));
        }
        let span = close + 1 - open;
        if text.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(self.err(open, span, AddressErrorKind::Ipv4Hop));
        }
        if let Some(i) = text
            .bytes()
            .position(|b| !(b.is_ascii_hexdigit() || b == b':' || b == b'.'))
        {
            return Err(bad_char(text, i, open + 1, Part::Ipv6Literal));
        }
        let addr: Ipv6Addr = text.parse().map_err(|_| {
            self.err(
                open,
                span,
                AddressErrorKind::BadIpv6 {
                    text: text.to_string(),
                },
            )
        })?;
        // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (deprecated "compatible") are IPv4 hosts in
        // disguise; 64:ff9b::a.b.c.d (NAT64) is a real IPv6 destination and is kept.
        let v4_compatible = text.contains('.') && addr.octets()[..12] == [0; 12];
        if addr.to_ipv4_mapped().is_some() || v4_compatible {
            return Err(self.err(open, span, AddressErrorKind::Ipv4Hop));
        }
        if addr.is_unspecified() {
            return Err(self.err(open, span, AddressErrorKind::UnspecifiedHop));
        }
        if addr.is_multicast() {
            return Err(self.err(open, span, AddressErrorKind::MulticastHop));
        }
        self.pos = close + 1;
        match self.peek() {
            Some(b'>' | b':') | None => Ok(Hop::Literal(addr)),
            Some(_) => {
                let ch = char_at(self.input, self.pos);
                Err(self.err(
                    self.pos,
                    ch.len_utf8(),
                    AddressErrorKind::AfterLiteral { ch },
                ))
            }
        }
    }

    /// Everything after ':' up to the path: `layer *("+" layer) "+" service`.
    fn layers(&mut self) -> Result<(Vec<Layer>, ServiceName), AddressError> {
        let start = self.pos;
        let rest = &self.input[start..];
        let end = rest.find('/').map_or(self.input.len(), |i| start + i);
        if end == start {
            return Err(self.err(start, 0, AddressErrorKind::MissingLayers));
        }
        self.pos = end;

        // (offset, text) of every '+' element.
        let mut elements = Vec::new();
        let mut at = start;
        for word in self.input[start..end].split('+') {
            elements.push((at, word));
            at += word.len() + 1;
        }
        let (service_at, service_word) = elements.pop().unwrap_or((start, ""));

        let mut layers: Vec<(usize, Layer)> = Vec::new();
        for &(at, word) in &elements {
            if word.is_empty() {
                return Err(self.err(at, 0, AddressErrorKind::EmptyLayer));
            }
            match word.parse::<Layer>() {
                Ok(layer) => layers.push((at, layer)),
                Err(_) => {
                    if let Some(i) = word.bytes().position(|b| !b.is_ascii_alphanumeric()) {
                        return Err(bad_char(word, i, at, Part::Layer));
                    }
                    return Err(self.err(
                        at,
                        word.len(),
                        AddressErrorKind::UnknownLayer {
                            word: word.to_string(),
                        },
                    ));
                }
            }
        }

        if service_word.is_empty() {
            return Err(self.err(service_at, 0, AddressErrorKind::MissingService));
        }
        if layers.is_empty() {
            // A lone word: `host:tcp` lacks the service, `host:echo` lacks the transport.
            if service_word.parse::<Layer>().is_ok() {
                return Err(self.err(end, 0, AddressErrorKind::MissingService));
            }
            validate_service(service_word, service_at)?;
            return Err(self.err(
                service_at,
                0,
                AddressErrorKind::MissingTransport { found: None },
            ));
        }
        validate_service(service_word, service_at)?;

        let (first_at, first) = layers[0];
        if !first.is_transport() {
            if let Some(&(at, t)) = layers.iter().find(|(_, l)| l.is_transport()) {
                return Err(self.err(
                    at,
                    t.as_str().len(),
                    AddressErrorKind::TransportNotFirst { transport: t },
                ));
            }
            return Err(self.err(
                first_at,
                first.as_str().len(),
                AddressErrorKind::MissingTransport { found: Some(first) },
            ));
        }
        for i in 1..layers.len() {
            let (at, layer) = layers[i];
            let len = layer.as_str().len();
            if layer.is_transport() {
                return Err(self.err(
                    at,
                    len,
                    AddressErrorKind::SecondTransport {
                        transport: layer,
                        first,
                    },
                ));
            }
            if let Some(&(prev_at, _)) = layers[..i].iter().find(|(_, l)| *l == layer) {
                return Err(self.err(
                    at,
                    len,
                    AddressErrorKind::DuplicateLayer {
                        layer,
                        first_at: prev_at,
                    },
                ));
            }
            let beneath = layers[i - 1].1;
            if !may_sit_on(layer, beneath) {
                return Err(self.err(at, len, AddressErrorKind::LayerOrder { layer, beneath }));
            }
        }
        let layers = layers.into_iter().map(|(_, l)| l).collect();
        Ok((layers, ServiceName(service_word.to_ascii_lowercase())))
    }

    fn path(&mut self) -> Result<Option<String>, AddressError> {
        let start = self.pos;
        if start == self.input.len() {
            return Ok(None);
        }
        // layers() stops only at '/' or the end.
        let path = &self.input[start..];
        let bytes = path.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let hex = bytes.get(i + 1..i + 3);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    let len = path[i..]
                        .char_indices()
                        .take(3)
                        .last()
                        .map_or(1, |(j, c)| j + c.len_utf8());
                    return Err(self.err(start + i, len, AddressErrorKind::BadPercentEncoding));
                }
                i += 3;
            } else if is_pchar_byte(b) {
                i += 1;
            } else {
                return Err(bad_char(path, i, start, Part::Path));
            }
        }
        Ok(Some(path.to_string()))
    }
}
