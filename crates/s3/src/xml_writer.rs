//! The XML writer behind every S3 document: escaping and a tiny element builder. Below
//! both [`crate::xml`] (response documents) and [`crate::error`] (the `<Error>` body).

use std::fmt::Write as _;

/// The S3 XML namespace.
pub const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Escapes text for element content (also replaces characters XML 1.0 cannot carry).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "&#x{:X};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A tiny XML document builder.
pub struct XmlWriter {
    out: String,
    stack: Vec<&'static str>,
}

impl XmlWriter {
    /// A document whose root element carries the S3 namespace.
    pub fn new(root: &'static str) -> Self {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = write!(out, "<{root} xmlns=\"{S3_NS}\">");
        Self {
            out,
            stack: vec![root],
        }
    }
    /// A document whose root has no namespace (S3's `<Error>`).
    pub fn new_plain(root: &'static str) -> Self {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = write!(out, "<{root}>");
        Self {
            out,
            stack: vec![root],
        }
    }
    /// `<name>text</name>`
    pub fn elem(&mut self, name: &str, text: &str) -> &mut Self {
        let _ = write!(self.out, "<{name}>{}</{name}>", escape(text));
        self
    }
    /// Opens `<name>`.
    pub fn open(&mut self, name: &'static str) -> &mut Self {
        let _ = write!(self.out, "<{name}>");
        self.stack.push(name);
        self
    }
    /// Escaped text inside the innermost open element.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.out.push_str(&escape(text));
        self
    }
    /// Closes the innermost open element.
    pub fn close(&mut self) -> &mut Self {
        if let Some(n) = self.stack.pop() {
            let _ = write!(self.out, "</{n}>");
        }
        self
    }
    /// Closes everything and returns the document.
    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out
    }
}
