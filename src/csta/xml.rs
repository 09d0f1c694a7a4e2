//! The XML underneath CSTA: one pass over `xmlparser` tokens that reports
//! the path of every element and the text of every leaf, and a writer.
//!
//! Element names are matched by local name (prefixes are ignored below the
//! root, so `lcs:line` is `line`). Nesting is bounded by [`MAX_DEPTH`]; a
//! document type declaration is refused, so no entity beyond the five
//! predefined ones can exist, and references are checked as text is read.

use heapless::Vec;
use xmlparser::{ElementEnd, Token, Tokenizer};

use super::text::{Text, check_references};
use super::{Error, Namespace};
use crate::outbuf::{OutBuf, Overflow};

/// Deepest element nesting accepted, root included.
pub const MAX_DEPTH: usize = 12;

/// The root element of a document and its namespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Root<'a> {
    pub name: &'a str,
    pub namespace: Option<&'a str>,
}

/// What the walk reports below the root. Paths leave the root out.
pub(crate) enum Visit<'p, 'a> {
    /// An element starts (reported before its content).
    Open(&'p [&'a str]),
    /// The non-blank text of the element at the path, trimmed.
    Text(&'p [&'a str], Text<'a>),
}

/// A document positioned after its root's start tag.
pub(crate) struct Reader<'a> {
    tokens: Tokenizer<'a>,
    /// Local names of the open elements, root first.
    stack: Vec<&'a str, MAX_DEPTH>,
    root_is_empty: bool,
}

impl<'a> Reader<'a> {
    /// Reads up to the end of the root's start tag.
    pub fn open(xml: &'a str) -> Result<(Root<'a>, Reader<'a>), Error> {
        let mut tokens = Tokenizer::from(xml);
        let mut root: Option<(&'a str, &'a str)> = None; // (prefix, local)
        let (mut default_ns, mut prefixed_ns) = (None, None);
        for token in tokens.by_ref() {
            match token.map_err(Error::Xml)? {
                Token::Declaration { .. } | Token::Comment { .. } | Token::ProcessingInstruction { .. } => {}
                Token::DtdStart { .. }
                | Token::EmptyDtd { .. }
                | Token::EntityDeclaration { .. }
                | Token::DtdEnd { .. } => {
                    return Err(Error::DtdNotAllowed);
                }
                Token::Text { text } if root.is_none() && text.as_str().trim().is_empty() => {}
                Token::ElementStart { prefix, local, .. } if root.is_none() => {
                    root = Some((prefix.as_str(), local.as_str()));
                }
                Token::Attribute { prefix, local, value, .. } => {
                    let (root_prefix, _) = root.ok_or(Error::NoRootElement)?;
                    match (prefix.as_str(), local.as_str()) {
                        ("", "xmlns") => default_ns = Some(value.as_str()),
                        ("xmlns", p) if p == root_prefix => prefixed_ns = Some(value.as_str()),
                        _ => {}
                    }
                }
                Token::ElementEnd { end, .. } => {
                    let (prefix, name) = root.ok_or(Error::NoRootElement)?;
                    let namespace = if prefix.is_empty() { default_ns } else { prefixed_ns };
                    let mut stack = Vec::new();
                    stack.push(name).expect("depth limit is above one");
                    let reader = Reader { tokens, stack, root_is_empty: matches!(end, ElementEnd::Empty) };
                    return Ok((Root { name, namespace }, reader));
                }
                _ => return Err(Error::NoRootElement),
            }
        }
        Err(Error::NoRootElement)
    }

    /// Walks the rest of the document, reporting elements and leaf text,
    /// and checks that it is well formed to its end.
    pub fn walk(mut self, mut visit: impl FnMut(Visit<'_, 'a>)) -> Result<(), Error> {
        if self.root_is_empty {
            self.stack.clear();
        }
        let mut open_tag = false;
        for token in self.tokens.by_ref() {
            match token.map_err(Error::Xml)? {
                Token::ElementStart { local, .. } => {
                    if self.stack.is_empty() {
                        return Err(Error::TrailingContent);
                    }
                    self.stack.push(local.as_str()).map_err(|_| Error::TooDeep)?;
                    open_tag = true;
                }
                Token::Attribute { .. } => {}
                Token::ElementEnd { end, .. } => {
                    if open_tag {
                        visit(Visit::Open(&self.stack[1..]));
                        open_tag = false;
                    }
                    match end {
                        ElementEnd::Open => {}
                        ElementEnd::Empty => {
                            self.stack.pop();
                        }
                        ElementEnd::Close(_, local) => {
                            if self.stack.pop() != Some(local.as_str()) {
                                return Err(Error::MismatchedTag);
                            }
                        }
                    }
                }
                Token::Text { text } => {
                    let trimmed = text.as_str().trim_matches([' ', '\t', '\r', '\n']);
                    if trimmed.is_empty() {
                        continue;
                    }
                    if self.stack.len() < 2 {
                        return Err(if self.stack.is_empty() { Error::TrailingContent } else { Error::UnexpectedText });
                    }
                    if !check_references(trimmed) {
                        return Err(Error::BadReference);
                    }
                    visit(Visit::Text(&self.stack[1..], Text::escaped(trimmed)));
                }
                Token::Cdata { text, .. } => {
                    if self.stack.len() < 2 {
                        return Err(Error::UnexpectedText);
                    }
                    visit(Visit::Text(&self.stack[1..], Text::literal(text.as_str())));
                }
                Token::Comment { .. } | Token::ProcessingInstruction { .. } | Token::Declaration { .. } => {}
                Token::DtdStart { .. }
                | Token::EmptyDtd { .. }
                | Token::EntityDeclaration { .. }
                | Token::DtdEnd { .. } => {
                    return Err(Error::DtdNotAllowed);
                }
            }
        }
        if self.stack.is_empty() { Ok(()) } else { Err(Error::Truncated) }
    }
}

/// Writes CSTA XML into an [`OutBuf`].
pub(crate) struct XmlWriter<'o, 'b> {
    out: &'o mut OutBuf<'b>,
}

impl<'o, 'b> XmlWriter<'o, 'b> {
    /// Writes the XML declaration and the root start tag with its namespace.
    pub fn root(out: &'o mut OutBuf<'b>, name: &str, namespace: Namespace) -> Result<Self, Overflow> {
        out.put_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><")?;
        out.put_str(name)?;
        out.put_str(" xmlns=\"")?;
        out.put_str(namespace.uri())?;
        out.put_str("\">")?;
        Ok(XmlWriter { out })
    }

    /// Writes a root element with no content: `<name xmlns="..."/>`.
    pub fn empty_root(out: &'o mut OutBuf<'b>, name: &str, namespace: Namespace) -> Result<(), Overflow> {
        out.put_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?><")?;
        out.put_str(name)?;
        out.put_str(" xmlns=\"")?;
        out.put_str(namespace.uri())?;
        out.put_str("\"/>")
    }

    /// `<name>`
    pub fn open(&mut self, name: &str) -> Result<&mut Self, Overflow> {
        self.out.put_byte(b'<')?;
        self.out.put_str(name)?;
        self.out.put_byte(b'>')?;
        Ok(self)
    }

    /// `</name>`
    pub fn close(&mut self, name: &str) -> Result<&mut Self, Overflow> {
        self.out.put_str("</")?;
        self.out.put_str(name)?;
        self.out.put_byte(b'>')?;
        Ok(self)
    }

    /// `<name/>`
    pub fn empty(&mut self, name: &str) -> Result<&mut Self, Overflow> {
        self.out.put_byte(b'<')?;
        self.out.put_str(name)?;
        self.out.put_str("/>")?;
        Ok(self)
    }

    /// `<name>text</name>`, the text escaped as needed.
    pub fn leaf(&mut self, name: &str, text: Text<'_>) -> Result<&mut Self, Overflow> {
        self.open(name)?;
        text.write_xml(self.out)?;
        self.close(name)
    }

    /// Character data, escaped as needed.
    pub fn text(&mut self, text: Text<'_>) -> Result<&mut Self, Overflow> {
        text.write_xml(self.out)?;
        Ok(self)
    }

    /// `<name>text</name>` for a value that is a literal of the writer's.
    pub fn leaf_str(&mut self, name: &str, text: &str) -> Result<&mut Self, Overflow> {
        self.leaf(name, Text::literal(text))
    }

    /// `<name>n</name>`
    pub fn leaf_number(&mut self, name: &str, n: u64) -> Result<&mut Self, Overflow> {
        self.open(name)?;
        self.out.put_decimal(n)?;
        self.close(name)
    }

    /// `<name>` + `<deviceIdentifier>text</deviceIdentifier>` + `</name>`
    /// (the event form of a device), or `<name><notKnown/></name>`.
    pub fn device(&mut self, name: &str, device: Option<Text<'_>>) -> Result<&mut Self, Overflow> {
        self.open(name)?;
        match device {
            Some(d) => self.leaf("deviceIdentifier", d)?,
            None => self.empty("notKnown")?,
        };
        self.close(name)
    }

    /// A raw fragment the caller knows to be well formed.
    pub fn raw(&mut self, xml: &str) -> Result<&mut Self, Overflow> {
        self.out.put_str(xml)?;
        Ok(self)
    }
}
