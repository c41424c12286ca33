# Remote state in a GCS bucket (versioned, uniform access, CMEK if you like). The bucket
# and prefix come from a backend config file, so nothing account-specific is committed:
#   cp backend.hcl.example backend.hcl   # edit the bucket
#   terraform init -backend-config=backend.hcl
terraform {
  backend "gcs" {}
}
