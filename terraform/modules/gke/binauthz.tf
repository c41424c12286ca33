# Binary Authorization (docs/adr/0034): the cluster admits an image only if the release
# attestor has signed its digest, besides Google's system images (GKE's own add-ons) and
# the third-party operators named in var.binauthz_allowlist. The release pipeline, after
# verifying the image's cosign signature and scan, signs the digest with the attestor's
# KMS key (`gcloud container binauthz attestations sign-and-create --keyversion ...`) as
# the release service account (release.tf) or one of var.attestation_signers.

locals {
  # Member -> member; the release service account's key is fixed, its email known on apply.
  attestation_signers = merge(
    { for m in var.attestation_signers : m => m },
    { release = google_service_account.release.member },
  )
}

# The attestor's signing key: asymmetric, so only the signers hold the private half and
# Binary Authorization checks with the public one.
resource "google_kms_crypto_key" "attestor" {
  #checkov:skip=CKV_GCP_43:asymmetric signing keys cannot rotate on a schedule; a rotation adds a key version and its public key to the attestor, so attestations by the old one stay valid
  name     = "${var.name}-attestor"
  key_ring = google_kms_key_ring.this.id
  purpose  = "ASYMMETRIC_SIGN"
  labels   = local.labels

  version_template {
    algorithm        = "EC_SIGN_P256_SHA256"
    protection_level = "HSM"
  }

  lifecycle {
    prevent_destroy = true
  }
}

data "google_kms_crypto_key_version" "attestor" {
  crypto_key = google_kms_crypto_key.attestor.id
}

# The Artifact Analysis note attestations are stored under.
resource "google_container_analysis_note" "attestor" {
  project = var.project_id
  name    = "${var.name}-release"

  attestation_authority {
    hint {
      human_readable_name = "ticketing release pipeline"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_binary_authorization_attestor" "release" {
  project     = var.project_id
  name        = "${var.name}-release"
  description = "Images the ticketing release pipeline built, verified and promoted"

  attestation_authority_note {
    note_reference = google_container_analysis_note.attestor.name

    public_keys {
      id = data.google_kms_crypto_key_version.attestor.id

      pkix_public_key {
        public_key_pem      = data.google_kms_crypto_key_version.attestor.public_key[0].pem
        signature_algorithm = data.google_kms_crypto_key_version.attestor.public_key[0].algorithm
      }
    }
  }
}

# Binary Authorization's service agent reads the attestations at admission.
resource "google_container_analysis_note_iam_member" "binauthz_viewer" {
  project = var.project_id
  note    = google_container_analysis_note.attestor.name
  role    = "roles/containeranalysis.notes.occurrences.viewer"
  member  = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-binaryauthorization.iam.gserviceaccount.com"

  depends_on = [google_binary_authorization_attestor.release]
}

# The release pipeline's identity finds the attestor, signs with the key and attaches
# attestations to the note.
resource "google_binary_authorization_attestor_iam_member" "attestation_signer" {
  for_each = local.attestation_signers

  project  = var.project_id
  attestor = google_binary_authorization_attestor.release.name
  role     = "roles/binaryauthorization.attestorsViewer"
  member   = each.value
}

resource "google_kms_crypto_key_iam_member" "attestation_signer" {
  for_each = local.attestation_signers

  crypto_key_id = google_kms_crypto_key.attestor.id
  role          = "roles/cloudkms.signerVerifier"
  member        = each.value
}

resource "google_container_analysis_note_iam_member" "attestation_signer" {
  for_each = local.attestation_signers

  project = var.project_id
  note    = google_container_analysis_note.attestor.name
  role    = "roles/containeranalysis.notes.attacher"
  member  = each.value
}

resource "google_project_iam_member" "attestation_signer" {
  for_each = local.attestation_signers

  project = var.project_id
  role    = "roles/containeranalysis.occurrences.editor"
  member  = each.value
}

resource "google_binary_authorization_policy" "this" {
  project     = var.project_id
  description = "ticketing: attested release images, Google system images and the listed operators"

  # Google-maintained images GKE runs itself (system pods, managed add-ons).
  global_policy_evaluation_mode = "ENABLE"

  dynamic "admission_whitelist_patterns" {
    for_each = var.binauthz_allowlist
    content {
      name_pattern = admission_whitelist_patterns.value
    }
  }

  default_admission_rule {
    evaluation_mode         = "REQUIRE_ATTESTATION"
    enforcement_mode        = "ENFORCED_BLOCK_AND_AUDIT_LOG"
    require_attestations_by = [google_binary_authorization_attestor.release.name]
  }

  depends_on = [google_container_analysis_note_iam_member.binauthz_viewer]
}
